"""In-memory node pairs and envelope crafting for protocol tests (h11 `ConnectionPair` style).

`NodePair` wires two `Node`s together with no sockets: whatever one node queues
for the other (datagrams to its address, stream messages to its address or to
the connection between them) is delivered by `pump`, with an explicit `now`.
Tests that want to tamper with traffic use `flush` to take one node's outputs
and `deliver` to hand a chosen packet to the other side.

`raw_envelope` builds envelopes field by field (any version, type, key, body,
even a non-canonical signed part) and signs them, so tests can reach every
branch of the decoder with authentic signatures.
"""

import random
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import cbor2

from railgun_ref.conformance.common import OutputTap
from railgun_ref.core.ids import Address
from railgun_ref.events import (
    ErrorReceived,
    MessageRejected,
    NodeEvent,
    PingReceived,
    PongReceived,
    RequestTimedOut,
)
from railgun_ref.identity.keys import Identity
from railgun_ref.node import ConnectionId, Node, NodeConfig, StreamTarget
from railgun_ref.rpc.requests import Channel
from railgun_ref.wire import cbor
from railgun_ref.wire.envelope import ENVELOPE_DOMAIN

#: A realistic Unix time, so envelope timestamps look like real ones.
T0 = 1_700_000_000.0

#: The one stream connection between the two nodes of a pair, as each side numbers it.
CONNECTION = ConnectionId(7)


def identity(n: int) -> Identity:
    """A fixed identity per small integer (seed = n repeated)."""
    return Identity.from_seed(bytes([n]) * 32)


@dataclass(frozen=True, slots=True)
class Packet:
    """One message in transit: what was sent, on which channel, to which target."""

    data: bytes
    channel: Channel
    target: Address | ConnectionId


class NodePair:
    """Two nodes, ``a`` at `ADDR_A` and ``b`` at `ADDR_B`, connected in memory."""

    ADDR_A: Address = ("127.0.0.1", 40001)
    ADDR_B: Address = ("127.0.0.1", 40002)

    def __init__(
        self,
        *,
        seed_a: int = 1,
        seed_b: int = 2,
        config_a: NodeConfig | None = None,
        config_b: NodeConfig | None = None,
    ) -> None:
        self.a = Node(identity(seed_a), rng=random.Random(seed_a), config=config_a, now=T0)
        self.b = Node(identity(seed_b), rng=random.Random(seed_b), config=config_b, now=T0)
        #: every packet delivered by `pump`, in order, as (sender, packet)
        self.log: list[tuple[str, Packet]] = []

    def address_of(self, node: Node) -> Address:
        return self.ADDR_A if node is self.a else self.ADDR_B

    def other(self, node: Node) -> Node:
        return self.b if node is self.a else self.a

    def flush(self, node: Node) -> list[Packet]:
        """Take everything `node` queued, without delivering it (its events wait for
        `drain_events`)."""
        out = [Packet(d, Channel.DATAGRAM, t) for d, t in take_datagrams(node)]
        out += [Packet(d, Channel.STREAM, t) for d, t in take_streams(node)]
        return out

    def deliver(self, sender: Node, packet: Packet, *, now: float) -> None:
        """Hand `packet`, sent by `sender`, to the other node at time `now`."""
        receiver = self.other(sender)
        source = self.address_of(sender)
        if packet.channel is Channel.DATAGRAM:
            assert packet.target == self.address_of(receiver), "datagram sent elsewhere"
            receiver.receive_datagram(packet.data, source, now=now)
        else:
            # A stream message goes either to the peer's listening address (the pair's
            # one connection is opened/reused) or back on that connection.
            assert packet.target in (self.address_of(receiver), CONNECTION)
            receiver.receive_stream_message(packet.data, CONNECTION, source, now=now)

    def pump(self, *, now: float) -> int:
        """Deliver traffic both ways until both nodes are quiet; return packets delivered."""
        delivered = 0
        while True:
            moved = 0
            for sender in (self.a, self.b):
                for packet in self.flush(sender):
                    self.log.append(("a" if sender is self.a else "b", packet))
                    self.deliver(sender, packet, now=now)
                    moved += 1
            if not moved:
                return delivered
            delivered += moved


#: The events of the request/response layer; other components (the DHT) report their own.
RPC_EVENTS = (PingReceived, PongReceived, RequestTimedOut, ErrorReceived, MessageRejected)


#: One tap per node, so `NodePair.flush`, `take_*` and `all_events` share what they drained.
_taps: WeakKeyDictionary[Node, OutputTap] = WeakKeyDictionary()


def _tap(node: Node) -> OutputTap:
    return _taps.setdefault(node, OutputTap(node))


def all_events(node: Node) -> list[NodeEvent]:
    """Every event `node` reported and no one took yet, in order."""
    return _tap(node).events()


def take_datagrams(node: Node) -> list[tuple[bytes, Address]]:
    """The datagrams `node` queued and no one took yet, oldest first."""
    return _tap(node).datagrams()


def take_streams(node: Node) -> list[tuple[bytes, StreamTarget]]:
    """The stream messages `node` queued and no one took yet, oldest first."""
    return _tap(node).streams()


def drain_events(node: Node) -> list[NodeEvent]:
    """Every pending request/response-layer event of `node`, in order (others are dropped)."""
    return [event for event in all_events(node) if isinstance(event, RPC_EVENTS)]


def signed_part(
    ident: Identity,
    *,
    version: int = 1,
    type: int = 1,
    request_id: int = 1,
    timestamp_ms: int = int(T0 * 1000),
    body: Any = None,
    sender_key: Any = None,
    extra: dict[int, Any] | None = None,
    drop: tuple[int, ...] = (),
) -> dict[int, Any]:
    """The signed map of an envelope, with any field overridden, added or dropped."""
    fields: dict[int, Any] = {
        0: version,
        1: type,
        2: request_id,
        3: ident.public_key if sender_key is None else sender_key,
        4: timestamp_ms,
        5: {0: b""} if body is None else body,
    }
    fields.update(extra or {})
    for key in drop:
        del fields[key]
    return fields


def raw_envelope(
    ident: Identity,
    *,
    signed: bytes | None = None,
    signature: bytes | None = None,
    canonical: bool = True,
    **fields: Any,
) -> bytes:
    """An envelope ``[signed, signature]`` built from parts and signed by `ident`.

    `signed` overrides the signed bytes (else `signed_part(**fields)` encoded, with
    cbor2 directly so out-of-model values can be signed too); `signature`
    overrides the signature (else a real one by `ident` over the domain and
    `signed`).
    """
    if signed is None:
        signed = cbor2.dumps(signed_part(ident, **fields), canonical=canonical)
    if signature is None:
        signature = ident.sign(ENVELOPE_DOMAIN + signed)
    return cbor.encode([signed, signature])
