"""NAT-4: the relaying peer: registrations, observed addresses, forwarding.

A node REGISTERs with a relay it can reach (and re-registers to keep its NAT
mapping alive); the relay answers OBSERVED with the address the REGISTER came
from and remembers it for `registration_lifetime`. A RELAY from a registered
node carries an inner envelope for another registered node: the relay sends
the inner bytes, untouched, to that node's registered address, so the
destination authenticates the original sender itself. Each sender may have
`max_relays_per_second` forwarded (a token bucket); the rest are dropped and
counted, as is everything from unregistered or unknown nodes.
"""

from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import RemoteProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.identity.keys import Identity
from railgun_ref.traversal import messages
from railgun_ref.traversal.envelopes import open_envelope, seal

REGISTRATION_LIFETIME: Final = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayConfig:
    registration_lifetime: float = REGISTRATION_LIFETIME
    max_relays_per_second: float = 200.0
    max_registrations: int = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class RelaySend:
    """Send `data` to `destination` from the relay's socket."""

    data: bytes
    destination: Address


RelayAction = RelaySend


class RelayCounter(StrEnum):
    REGISTERED = "relay.registered"
    FORWARDED = "relay.forwarded"
    REJECTED_MALFORMED = "relay.rejected_malformed"
    DROPPED_UNREGISTERED_SENDER = "relay.dropped_unregistered_sender"
    DROPPED_UNKNOWN_DESTINATION = "relay.dropped_unknown_destination"
    DROPPED_RATE = "relay.dropped_rate"
    DROPPED_FULL = "relay.dropped_full"
    IGNORED = "relay.ignored"  #: a valid message a relay has no use for


@dataclass(slots=True)
class _Registration:
    address: Address
    expires: float
    tokens: float
    refilled: float


class RelayCore:
    """The sans-IO relaying peer (`ProtocolCore[RelayAction]`)."""

    def __init__(self, identity: Identity, *, config: RelayConfig | None = None) -> None:
        self.identity = identity
        self.config = config or RelayConfig()
        self.counters: Counters[RelayCounter] = Counters()
        self._registered: dict[NodeId, _Registration] = {}
        self._actions: deque[RelayAction] = deque()
        self._seq = 0

    def receive_datagram(self, data: bytes, src: Address, *, now: float) -> None:
        try:
            received = open_envelope(data)
        except RemoteProtocolError:
            self.counters.inc(RelayCounter.REJECTED_MALFORMED)
            return
        self.receive(received.sender, received.message, src, now=now)

    def receive(
        self, sender: NodeId, message: messages.TraversalMessage, src: Address, *, now: float
    ) -> None:
        """An authenticated traversal message from `sender`, arrived from `src`."""
        match message:
            case messages.Register():
                self._register(sender, src, now=now)
            case messages.Relay(to=to, inner=inner):
                self._forward(sender, src, to, inner, now=now)
            case _:
                self.counters.inc(RelayCounter.IGNORED)

    def _register(self, sender: NodeId, src: Address, *, now: float) -> None:
        known = self._registered.get(sender)
        if known is None and len(self._registered) >= self.config.max_registrations:
            self.counters.inc(RelayCounter.DROPPED_FULL)
            return
        rate = self.config.max_relays_per_second
        if known is None or known.address != src:
            known = _Registration(address=src, expires=0.0, tokens=rate, refilled=now)
            self._registered[sender] = known
        known.expires = now + self.config.registration_lifetime
        self.counters.inc(RelayCounter.REGISTERED)
        self._seq += 1
        reply = seal(self.identity, messages.Observed(address=src), now=now, seq=self._seq)
        self._actions.append(RelaySend(data=reply, destination=src))

    def _forward(
        self, sender: NodeId, src: Address, to: NodeId, inner: bytes, *, now: float
    ) -> None:
        own = self._live(sender, now)
        if own is None or own.address != src:
            self.counters.inc(RelayCounter.DROPPED_UNREGISTERED_SENDER)
            return
        rate = self.config.max_relays_per_second
        own.tokens = min(rate, own.tokens + (now - own.refilled) * rate)
        own.refilled = now
        if own.tokens < 1:
            self.counters.inc(RelayCounter.DROPPED_RATE)
            return
        own.tokens -= 1
        target = self._live(to, now)
        if target is None:
            self.counters.inc(RelayCounter.DROPPED_UNKNOWN_DESTINATION)
            return
        self.counters.inc(RelayCounter.FORWARDED)
        self._actions.append(RelaySend(data=inner, destination=target.address))

    def _live(self, node: NodeId, now: float) -> _Registration | None:
        found = self._registered.get(node)
        return found if found is not None and found.expires > now else None

    def on_timer(self, *, now: float) -> None:
        for node in [n for n, r in self._registered.items() if r.expires <= now]:
            del self._registered[node]

    def next_deadline(self) -> float | None:
        return min((r.expires for r in self._registered.values()), default=None)

    def next_action(self) -> RelayAction | None:
        return self._actions.popleft() if self._actions else None
