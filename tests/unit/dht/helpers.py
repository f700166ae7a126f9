"""Shared builders for the DHT tests: identities, contacts, signed records, and a `Dht` harness.

`DhtHarness` drives one sans-IO `Dht` with no node around it: every request it
sends is captured as a `Sent`, and the test answers, refuses or times it out by
hand, so each RPC outcome of the service can be reached on purpose.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar, assert_never

from railgun_ref.core.ids import Address, NodeId
from railgun_ref.dht.geometry import distance, id_at_distance
from railgun_ref.dht.keys import KeyType
from railgun_ref.dht.records import Record, sign_record
from railgun_ref.dht.routing import Contact
from railgun_ref.dht.service import Dht, DhtConfig, EmitDhtEvent, SendDhtRequest
from railgun_ref.events import NodeEvent
from railgun_ref.identity.keys import Identity
from railgun_ref.rpc.requests import Channel, PendingRequest
from railgun_ref.wire.messages import Message, Store

E = TypeVar("E")

#: A realistic Unix time (the same one the node pair tests use).
T0 = 1_700_000_000.0
#: An expiry an hour after T0, in milliseconds.
HOUR_MS = int((T0 + 3600) * 1000)


def ident(n: int) -> Identity:
    """A fixed identity per integer (distinct from the node pair's small seeds)."""
    return Identity.from_seed(n.to_bytes(4, "big") * 8)


def address(n: int) -> Address:
    return (f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}", 7000 + n % 1000)


def contact(node_id: bytes, n: int = 1) -> Contact:
    return Contact(node_id=NodeId(node_id), address=address(n))


def at_distance(local: bytes, d: int) -> NodeId:
    return NodeId(id_at_distance(local, d))


def closest_ids(ids: Sequence[bytes], target: bytes, count: int) -> list[bytes]:
    """Brute force: the `count` ids nearest `target`."""
    return sorted(ids, key=lambda i: distance(i, target))[:count]


def record(
    publisher: Identity,
    *,
    key_type: KeyType = KeyType.ROOM,
    ident_bytes: bytes = b"room-1",
    seq: int = 1,
    expires_ms: int = HOUR_MS,
    value: bytes = b"hello",
) -> Record:
    return sign_record(
        publisher,
        key_type=key_type,
        ident=ident_bytes,
        seq=seq,
        expires_ms=expires_ms,
        value=value,
    )


@dataclass(frozen=True, slots=True)
class Sent:
    request_id: int
    message: Message
    address: Address
    peer: NodeId | None
    at: float
    channel: Channel = Channel.DATAGRAM


@dataclass
class DhtHarness:
    """One `Dht` whose actions are pulled by the test: requests captured instead of sent."""

    identity: Identity
    config: DhtConfig = field(default_factory=DhtConfig)
    now: float = T0

    def __post_init__(self) -> None:
        self._sent: list[Sent] = []
        self._events: list[NodeEvent] = []
        self.dht = Dht(self.identity, rng=random.Random(0), config=self.config, now=self.now)

    def _drain(self) -> None:
        """CORE-1.4: pull every action the DHT has queued."""
        while (action := self.dht.next_action()) is not None:
            match action:
                case SendDhtRequest():
                    self._sent.append(
                        Sent(
                            action.request_id,
                            action.message,
                            action.address,
                            action.expected_peer,
                            action.sent_at,
                            action.channel,
                        )
                    )
                case EmitDhtEvent(event=event):
                    self._events.append(event)
                case _:
                    assert_never(action)

    @property
    def sent(self) -> list[Sent]:
        """The requests sent and not yet taken, oldest first."""
        self._drain()
        return self._sent

    @property
    def events(self) -> list[NodeEvent]:
        """Every event the DHT reported, oldest first."""
        self._drain()
        return self._events

    def take(self, kind: type | None = None) -> list[Sent]:
        """Remove and return the captured requests (of one message class, if given)."""
        chosen = [s for s in self.sent if kind is None or isinstance(s.message, kind)]
        self._sent = [s for s in self._sent if s not in chosen]
        return chosen

    @staticmethod
    def pending(sent: Sent) -> PendingRequest:
        return PendingRequest(
            request_id=sent.request_id,
            kind=sent.message.TYPE,
            address=sent.address,
            expected_sender=sent.peer,
            channel=sent.channel,
            sent_at=sent.at,
            deadline=sent.at + 5.0,
        )

    def answer(self, sent: Sent, message: Message, *, now: float) -> None:
        assert sent.peer is not None
        self.dht.on_response(self.pending(sent), sent.peer, message, now=now)

    def refuse(self, sent: Sent, code: int, *, now: float) -> None:
        self.dht.on_error(self.pending(sent), code, now=now)

    def time_out(self, sent: Sent, *, now: float) -> None:
        self.dht.on_timeout(self.pending(sent), now=now)

    def of_type(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def take_stores(self) -> list[tuple[Sent, Record]]:
        """Remove the captured STOREs; return each with the record it carries."""
        return [
            (s, Record.from_cbor_value(s.message.record))
            for s in self.take(Store)
            if isinstance(s.message, Store)
        ]
