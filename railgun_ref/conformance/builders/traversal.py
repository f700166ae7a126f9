"""traversal.json: the NAT traversal coordination messages (NAT-2) and the plan table (NAT-3)."""

from typing import Any, Final

from railgun_ref.capacity.nat import NatType
from railgun_ref.conformance.builders.base import Vectors, pseudo_random
from railgun_ref.conformance.common import JsonObject, traversal_json
from railgun_ref.core import cbor
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.traversal import messages as m
from railgun_ref.traversal.plan import choose_plan, punchable

NOTES: Final = {
    "Register": "REGISTER and OBSERVED, between a node and its relay.",
    "Relay": "RELAY: an inner envelope for another node.",
    "Coordination": "CONNECT and SYNC, exchanged through the relay.",
    "Punch": "PUNCH and PUNCH_ACK, sent directly.",
    "Bounds": "A field outside its bounds.",
    "Shape": "A payload that is not a well-formed traversal map.",
}

HEADER: Final = [
    "NAT traversal (NAT-2, NAT-3). A TraversalMessageTest gives a payload (the bytes of",
    "an APP message on topic 3, NAT-1); a receiver decodes it to 'decoded' (valid) or",
    "refuses it with 'expectedError' (invalid). Addresses are [host, port]; byte strings",
    "are hex. A TraversalPlanTest gives two NAT types: whether the pair is punchable and",
    "the plan of the first attempt.",
]

NONCE: Final = pseudo_random("traversal/nonce", m.NONCE_SIZE)
PEER: Final = NodeId(pseudo_random("traversal/peer", 32))
INNER: Final = pseudo_random("traversal/inner", 100)


def _valid() -> list[tuple[m.TraversalMessage, str, str, str]]:
    v4, v6 = ("198.51.100.7", 40001), ("2001:db8::7", 3478)
    return [
        (m.Register(), "REGISTER", "NAT-2.1", "Register"),
        (m.Observed(address=v4), "OBSERVED, IPv4", "NAT-2.1", "Register"),
        (m.Relay(to=PEER, inner=INNER), "RELAY of a 100-byte envelope", "NAT-2.2", "Relay"),
        (
            m.Connect(nonce=NONCE, addresses=(v4, v6), nat=NatType.PORT_RESTRICTED),
            "CONNECT with two candidates",
            "NAT-2.3",
            "Coordination",
        ),
        (
            m.Sync(nonce=NONCE, attempt=1, plan=m.Plan.PUNCH),
            "SYNC, first attempt",
            "NAT-2.4",
            "Coordination",
        ),
        (m.Punch(nonce=NONCE, attempt=3), "PUNCH, third attempt", "NAT-2.5", "Punch"),
        (m.PunchAck(nonce=NONCE, attempt=1), "PUNCH_ACK", "NAT-2.5", "Punch"),
    ]


def _invalid() -> list[tuple[Any, str, str, str]]:
    good = [["198.51.100.7", 40001]]
    return [
        ({0: 9}, "unknown kind 9", "NAT-2.1", "Shape"),
        ([4], "not a map", "NAT-2.1", "Shape"),
        ({0: 1, 1: 0}, "REGISTER with an extra key", "NAT-2.1", "Shape"),
        ({0: 3, 1: b"\x01" * 31, 2: INNER}, "RELAY to a 31-byte id", "NAT-2.2", "Bounds"),
        ({0: 3, 1: bytes(PEER), 2: b""}, "RELAY of nothing", "NAT-2.2", "Bounds"),
        ({0: 4, 1: NONCE, 2: [], 3: "open"}, "CONNECT without candidates", "NAT-2.3", "Bounds"),
        (
            {0: 4, 1: NONCE, 2: good * 9, 3: "open"},
            "CONNECT with 9 candidates",
            "NAT-2.3",
            "Bounds",
        ),
        (
            {0: 4, 1: NONCE, 2: [["0.0.0.0", 1]], 3: "open"},
            "unspecified candidate",
            "NAT-2.3",
            "Bounds",
        ),
        (
            {0: 4, 1: NONCE, 2: [["224.0.0.1", 9]], 3: "open"},
            "multicast candidate",
            "NAT-2.3",
            "Bounds",
        ),
        ({0: 4, 1: NONCE, 2: [["host.example", 9]], 3: "open"}, "a name", "NAT-2.3", "Bounds"),
        ({0: 4, 1: NONCE, 2: [["198.51.100.7", 0]], 3: "open"}, "port 0", "NAT-2.3", "Bounds"),
        ({0: 4, 1: NONCE, 2: good, 3: "cone"}, "unknown NAT type", "NAT-2.3", "Bounds"),
        ({0: 4, 1: NONCE[:15], 2: good, 3: "open"}, "15-byte nonce", "NAT-2.3", "Bounds"),
        ({0: 5, 1: NONCE, 2: 0, 3: "punch"}, "SYNC attempt 0", "NAT-2.4", "Bounds"),
        ({0: 5, 1: NONCE, 2: 9, 3: "punch"}, "SYNC attempt 9", "NAT-2.4", "Bounds"),
        ({0: 5, 1: NONCE, 2: 1, 3: "guess"}, "SYNC with an unknown plan", "NAT-2.4", "Bounds"),
        ({0: 6, 1: NONCE}, "PUNCH without attempt", "NAT-2.5", "Shape"),
    ]


def _decode_error(payload: bytes) -> str | None:
    try:
        m.decode(payload)
    except RemoteProtocolError as exc:
        return exc.code.name
    return None


def build() -> JsonObject:
    v = Vectors("traversal", "railgun-nat-traversal", HEADER, NOTES)
    tests = v.group("TraversalMessageTest")
    for message, comment, clause, flag in _valid():
        payload = m.encode(message)
        assert m.decode(payload) == message
        v.test(
            tests,
            comment=comment,
            result="valid",
            clause=clause,
            flags=(flag,),
            payload=payload.hex(),
            decoded=traversal_json(message),
        )
    for body, comment, clause, flag in _invalid():
        payload = cbor.encode(body)
        error = _decode_error(payload)
        assert error is not None, comment
        v.test(
            tests,
            comment=comment,
            result="invalid",
            clause=clause,
            flags=(flag,),
            payload=payload.hex(),
            expectedError=error,
        )
    plans = v.group("TraversalPlanTest")
    kinds = [NatType.OPEN, NatType.FULL_CONE, NatType.RESTRICTED]
    kinds += [NatType.PORT_RESTRICTED, NatType.SYMMETRIC, NatType.UNKNOWN, NatType.UDP_BLOCKED]
    for a in kinds:
        for b in kinds:
            v.test(
                plans,
                comment=f"{a.value} -> {b.value}",
                result="valid",
                clause="NAT-3.2",
                flags=(),
                initiator=a.value,
                responder=b.value,
                punchable=punchable(a, b),
                plan=choose_plan(a, b).value,
            )
    return v.document()
