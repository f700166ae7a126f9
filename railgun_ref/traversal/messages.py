"""NAT-2: the traversal messages and their codec.

Each message is the payload of an APP message (APP-1.1) on topic
`APP_TOPIC_TRAVERSAL`, inside a signed envelope (ENV-1), so its sender is
authenticated by the envelope. The payload is the deterministic CBOR map
``{0: kind, ...}``:

=========  ====  ==========================================================
message    kind  fields
=========  ====  ==========================================================
REGISTER   1     (none): "relay for me" to a relaying peer
OBSERVED   2     1: address the relay saw the REGISTER come from
RELAY      3     1: destination node id (32 bytes), 2: inner envelope bytes
CONNECT    4     1: nonce (16 bytes), 2: [address, ...] (1..8), 3: NAT type
SYNC       5     1: nonce, 2: attempt (1..8), 3: plan
PUNCH      6     1: nonce, 2: attempt
PUNCH_ACK  7     1: nonce, 2: attempt
=========  ====  ==========================================================

Addresses are ``[host, port]`` (MSG-2.3). Anything else is MALFORMED
(`RemoteProtocolError`).
"""

import ipaddress
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, Final

from railgun_ref.capacity.nat import NatType
from railgun_ref.core import cbor
from railgun_ref.core.constants import NODE_ID_SIZE
from railgun_ref.core.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.wire.messages import decode_address, encode_address

NONCE_SIZE: Final = 16
MAX_ADDRESSES: Final = 8  #: NAT-2.3: candidate addresses in one CONNECT
MAX_ATTEMPTS: Final = 8  #: NAT-2.4: attempt numbers are 1..8
MAX_INNER: Final = 1100  #: NAT-2.2: an inner envelope fits one datagram with its RELAY


class Kind(IntEnum):
    REGISTER = 1
    OBSERVED = 2
    RELAY = 3
    CONNECT = 4
    SYNC = 5
    PUNCH = 6
    PUNCH_ACK = 7


class Plan(StrEnum):
    """NAT-3: how a pair connects, from the two NAT types (`plan.choose_plan`)."""

    DIRECT = "direct"  #: the responder is reachable: the initiator sends to it at once
    REVERSE = "reverse"  #: the initiator is reachable: the responder sends to it
    PUNCH = "punch"  #: both filter: simultaneous sends at the synchronised time
    RELAY = "relay"  #: not punchable: stay on the relay


@dataclass(frozen=True, slots=True, kw_only=True)
class Register:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Observed:
    address: Address


@dataclass(frozen=True, slots=True, kw_only=True)
class Relay:
    to: NodeId
    inner: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Connect:
    nonce: bytes
    addresses: tuple[Address, ...]
    nat: NatType


@dataclass(frozen=True, slots=True, kw_only=True)
class Sync:
    nonce: bytes
    attempt: int
    plan: Plan


@dataclass(frozen=True, slots=True, kw_only=True)
class Punch:
    nonce: bytes
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PunchAck:
    nonce: bytes
    attempt: int


TraversalMessage = Register | Observed | Relay | Connect | Sync | Punch | PunchAck


def _malformed(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.MALFORMED, reason)


def check_candidate(address: Address) -> Address:
    """NAT-2.3: a candidate is a unicast IP literal and a port 1..65535."""
    host, port = address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise _malformed(f"candidate host {host!r} is not an IP literal") from None
    if ip.is_unspecified or ip.is_multicast or not 0 < port <= 0xFFFF:
        raise _malformed(f"candidate {host}:{port} is not a unicast address and port")
    return address


def encode(message: TraversalMessage) -> bytes:
    """The payload bytes of `message` (deterministic CBOR)."""
    return cbor.encode(_to_map(message))


def _to_map(message: TraversalMessage) -> dict[int, Any]:
    match message:
        case Register():
            return {0: Kind.REGISTER}
        case Observed(address=address):
            return {0: Kind.OBSERVED, 1: encode_address(address)}
        case Relay(to=to, inner=inner):
            return {0: Kind.RELAY, 1: bytes(to), 2: inner}
        case Connect(nonce=nonce, addresses=addresses, nat=nat):
            if not 1 <= len(addresses) <= MAX_ADDRESSES:
                raise LocalProtocolError(f"CONNECT carries 1..{MAX_ADDRESSES} addresses")
            return {
                0: Kind.CONNECT,
                1: nonce,
                2: [encode_address(a) for a in addresses],
                3: nat.value,
            }
        case Sync(nonce=nonce, attempt=attempt, plan=plan):
            return {0: Kind.SYNC, 1: nonce, 2: attempt, 3: plan.value}
        case Punch(nonce=nonce, attempt=attempt):
            return {0: Kind.PUNCH, 1: nonce, 2: attempt}
        case PunchAck(nonce=nonce, attempt=attempt):
            return {0: Kind.PUNCH_ACK, 1: nonce, 2: attempt}


_FIELDS: Final = {
    Kind.REGISTER: frozenset({0}),
    Kind.OBSERVED: frozenset({0, 1}),
    Kind.RELAY: frozenset({0, 1, 2}),
    Kind.CONNECT: frozenset({0, 1, 2, 3}),
    Kind.SYNC: frozenset({0, 1, 2, 3}),
    Kind.PUNCH: frozenset({0, 1, 2}),
    Kind.PUNCH_ACK: frozenset({0, 1, 2}),
}


def decode(data: bytes) -> TraversalMessage:
    """Parse a payload; `RemoteProtocolError` (MALFORMED) for anything else."""
    body = cbor.decode(data)
    if not isinstance(body, dict) or type(body.get(0)) is not int:
        raise _malformed("a traversal message is a map with an integer kind at key 0")
    try:
        kind = Kind(body[0])
    except ValueError:
        raise _malformed(f"unknown traversal message kind {body[0]}") from None
    if body.keys() != _FIELDS[kind]:
        raise _malformed(f"{kind.name} has keys {sorted(_FIELDS[kind])}")
    return _from_map(kind, body)


def _nonce(value: object) -> bytes:
    if not isinstance(value, bytes) or len(value) != NONCE_SIZE:
        raise _malformed(f"nonce must be {NONCE_SIZE} bytes")
    return value


def _attempt(value: object) -> int:
    if type(value) is not int or not 1 <= value <= MAX_ATTEMPTS:
        raise _malformed(f"attempt must be 1..{MAX_ATTEMPTS}")
    return value


def _from_map(kind: Kind, body: dict[int, Any]) -> TraversalMessage:
    match kind:
        case Kind.REGISTER:
            return Register()
        case Kind.OBSERVED:
            return Observed(address=decode_address(body[1]))
        case Kind.RELAY:
            to, inner = body[1], body[2]
            if not isinstance(to, bytes) or len(to) != NODE_ID_SIZE:
                raise _malformed(f"RELAY destination must be a {NODE_ID_SIZE}-byte node id")
            if not isinstance(inner, bytes) or not 0 < len(inner) <= MAX_INNER:
                raise _malformed(f"RELAY inner envelope must be 1..{MAX_INNER} bytes")
            return Relay(to=NodeId(to), inner=inner)
        case Kind.CONNECT:
            return _connect(body)
        case Kind.SYNC:
            plan = body[3]
            if type(plan) is not str or plan not in {p.value for p in Plan}:
                raise _malformed(f"unknown plan {plan!r}")
            return Sync(nonce=_nonce(body[1]), attempt=_attempt(body[2]), plan=Plan(plan))
        case Kind.PUNCH:
            return Punch(nonce=_nonce(body[1]), attempt=_attempt(body[2]))
        case Kind.PUNCH_ACK:
            return PunchAck(nonce=_nonce(body[1]), attempt=_attempt(body[2]))


def _connect(body: dict[int, Any]) -> Connect:
    addresses, nat = body[2], body[3]
    if not isinstance(addresses, list) or not 1 <= len(addresses) <= MAX_ADDRESSES:
        raise _malformed(f"CONNECT carries 1..{MAX_ADDRESSES} addresses")
    if type(nat) is not str or nat not in {n.value for n in NatType}:
        raise _malformed(f"unknown NAT type {nat!r}")
    candidates = tuple(check_candidate(decode_address(a)) for a in addresses)
    return Connect(nonce=_nonce(body[1]), addresses=candidates, nat=NatType(nat))
