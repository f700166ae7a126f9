"""An RFC 5780-capable STUN Binding responder, sans-IO.

RFC 5780 §3: a server that supports behaviour discovery listens on two IP
addresses and two ports -- four transport addresses. A Binding request that
arrives on one of them is answered (§6.1, RFC 8489 §7.3) with:

* XOR-MAPPED-ADDRESS: the request's source address, as the server saw it;
* RESPONSE-ORIGIN: the address the response is sent from;
* OTHER-ADDRESS: the address differing in both IP and port from the one the
  request arrived on -- where "change IP and port" answers come from;

and sent from the receiving address, or, when the request carries
CHANGE-REQUEST, from the address with the IP and/or port changed. A server
configured without alternates is a plain RFC 8489 server: it omits
OTHER-ADDRESS and answers a change request with 420 (RFC 5780 §6.1).

`BindingServer` is stateless apart from its counters and its queue of
replies. It is a protocol core like any other (CORE-1): `receive` takes the
bytes, who sent them, which of the server's addresses received them and
``now``, and queues the replies to send (`StunReply`, each with the local
address to send it from) for the driver to pull with `next_action`; it has
no timers (`next_deadline` is always None). Garbage, responses and
indications are counted and dropped; it never raises for anything a peer
sends. Drivers: `railgun_ref.drivers.stun_server` (real UDP),
`railgun_ref.drivers.sim_nat` (the simulator).
"""

from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError, RemoteProtocolError
from railgun_ref.core.ids import Address
from railgun_ref.stun.codec import (
    Attribute,
    AttributeType,
    ChangeRequest,
    Fingerprint,
    MessageClass,
    Method,
    OtherAddress,
    Padding,
    ResponseOrigin,
    ResponsePort,
    Software,
    StunErrorCode,
    UnknownAttributes,
    XorMappedAddress,
    decode_message,
    encode_message,
    error_response,
    success_response,
)

__all__ = [
    "DEFAULT_SOFTWARE",
    "BindingServer",
    "ServerAddresses",
    "StunAction",
    "StunCounter",
    "StunReply",
]

#: SOFTWARE this implementation puts in its responses.
DEFAULT_SOFTWARE = "railgun-ref"


class StunCounter(StrEnum):
    """What `BindingServer.counters` counts: answered and dropped, and why."""

    MALFORMED = "stun.malformed"  #: not a STUN message
    IGNORED = "stun.ignored"  #: label: the `MessageClass` of a response or indication
    ERROR = "stun.error"  #: label: the `StunErrorCode` answered
    BINDING_ANSWERED = "stun.binding_answered"
    BINDING_ANSWERED_CHANGED = "stun.binding_answered_changed"  #: from a changed address


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerAddresses:
    """The server's IPs and ports (RFC 5780 §3). Alternates: both given, or neither."""

    primary_host: str
    primary_port: int
    alternate_host: str | None = None
    alternate_port: int | None = None

    def __post_init__(self) -> None:
        if (self.alternate_host is None) != (self.alternate_port is None):
            raise LocalProtocolError(
                "give both an alternate host and an alternate port, or neither"
            )
        if self.alternate_host == self.primary_host or self.alternate_port == self.primary_port:
            raise LocalProtocolError(
                "the alternate host and port must differ from the primary ones"
            )

    @property
    def primary(self) -> Address:
        return (self.primary_host, self.primary_port)

    @property
    def alternate(self) -> Address | None:
        """The address differing from the primary in both IP and port (OTHER-ADDRESS of it)."""
        if self.alternate_host is None or self.alternate_port is None:
            return None
        return (self.alternate_host, self.alternate_port)

    @property
    def supports_change(self) -> bool:
        return self.alternate_host is not None

    def all(self) -> tuple[Address, ...]:
        """Every address the server listens on: 1, or 4 with alternates."""
        if self.alternate_host is None or self.alternate_port is None:
            return (self.primary,)
        return tuple(
            (host, port)
            for host in (self.primary_host, self.alternate_host)
            for port in (self.primary_port, self.alternate_port)
        )

    def changed(self, local: Address, *, change_ip: bool, change_port: bool) -> Address:
        """The address a response leaves from: `local` with its IP and/or port swapped."""
        if local not in self.all():
            raise LocalProtocolError(f"{local} is not one of this server's addresses")
        host, port = local
        if change_ip or change_port:
            if self.alternate_host is None or self.alternate_port is None:
                raise LocalProtocolError("this server has no alternate address")
            if change_ip:
                host = self.alternate_host if host == self.primary_host else self.primary_host
            if change_port:
                port = self.alternate_port if port == self.primary_port else self.primary_port
        return (host, port)

    def other(self, local: Address) -> Address:
        """OTHER-ADDRESS for a request received on `local` (RFC 5780 §7.4)."""
        return self.changed(local, change_ip=True, change_port=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class StunReply:
    """Send `data` to `destination` from the server's local address `source`."""

    data: bytes
    destination: Address
    source: Address


#: Everything a `BindingServer` asks its driver to do (a closed union of one).
StunAction = StunReply


class BindingServer:
    """Answers STUN Binding requests for the addresses in `addresses` (see module docstring)."""

    def __init__(
        self, addresses: ServerAddresses, *, software: str | None = DEFAULT_SOFTWARE
    ) -> None:
        self.addresses = addresses
        self._software = (Software(software),) if software is not None else ()
        self._replies: deque[StunAction] = deque()
        #: ``stun.*`` counts of what was answered and what was dropped, and why.
        self.counters: Counters[StunCounter] = Counters()

    def receive(self, data: bytes, src: Address, *, local: Address, now: float) -> None:
        """One datagram `src` sent to our address `local`; queues its reply, if any."""
        self._replies.extend(self._answer(data, src, local))

    def next_action(self) -> StunAction | None:
        """The oldest reply not yet sent, or None (CORE-1.2)."""
        return self._replies.popleft() if self._replies else None

    def next_deadline(self) -> float | None:
        """Never: a Binding responder keeps no timers (CORE-1.3)."""
        return None

    def on_timer(self, *, now: float) -> None:
        """Nothing is ever due (CORE-1.3)."""

    def _answer(self, data: bytes, src: Address, local: Address) -> list[StunReply]:
        if local not in self.addresses.all():
            raise LocalProtocolError(f"{local} is not one of this server's addresses")
        try:
            request = decode_message(data)
        except RemoteProtocolError:
            self.counters.inc(StunCounter.MALFORMED)
            return []
        if request.message_class is not MessageClass.REQUEST:
            # RFC 8489 §6.3: a server never answers responses or indications.
            self.counters.inc(StunCounter.IGNORED, label=request.message_class)
            return []
        fingerprint = request.find(Fingerprint) is not None

        def reply(
            response_attributes: tuple[Attribute, ...], *, code: StunErrorCode | None = None
        ) -> list[StunReply]:
            if code is None:
                response = success_response(request, *response_attributes, *self._software)
            else:
                response = error_response(request, code, *response_attributes, *self._software)
                self.counters.inc(StunCounter.ERROR, label=code)
            encoded = encode_message(response, fingerprint=fingerprint)
            return [StunReply(data=encoded, destination=src, source=local)]

        # RFC 8489 §6.3.1: unknown comprehension-required attributes -> 420.
        unknown = request.unknown_comprehension_required
        if unknown:
            return reply((UnknownAttributes(unknown),), code=StunErrorCode.UNKNOWN_ATTRIBUTE)
        if request.method != Method.BINDING:
            return reply((), code=StunErrorCode.BAD_REQUEST)
        change = request.find(ChangeRequest)
        change_ip = change is not None and change.change_ip
        change_port = change is not None and change.change_port
        if (change_ip or change_port) and not self.addresses.supports_change:
            # RFC 5780 §6.1: no alternate address to answer from.
            return reply(
                (UnknownAttributes((AttributeType.CHANGE_REQUEST,)),),
                code=StunErrorCode.UNKNOWN_ATTRIBUTE,
            )
        source = self.addresses.changed(local, change_ip=change_ip, change_port=change_port)
        destination = src
        response_port = request.find(ResponsePort)
        padding = request.find(Padding)
        if padding is not None and response_port is not None:
            # RFC 5780 §6.1: PADDING and RESPONSE-PORT together -> 400 (CAP-6.4).
            return reply((), code=StunErrorCode.BAD_REQUEST)
        if response_port is not None:
            if response_port.value == 0:
                return reply((), code=StunErrorCode.BAD_REQUEST)
            destination = (src[0], response_port.value)  # RFC 5780 §6.1
        attributes: tuple[Attribute, ...] = (XorMappedAddress(src), ResponseOrigin(source))
        if self.addresses.supports_change:
            attributes += (OtherAddress(self.addresses.other(local)),)
        if padding is not None:
            attributes += (Padding(padding.value),)  # RFC 5780 §7.6: echoed (CAP-6.4)
        response = success_response(request, *attributes, *self._software)
        self.counters.inc(StunCounter.BINDING_ANSWERED)
        if source != local:
            self.counters.inc(StunCounter.BINDING_ANSWERED_CHANGED)
        encoded = encode_message(response, fingerprint=fingerprint)
        return [StunReply(data=encoded, destination=destination, source=source)]
