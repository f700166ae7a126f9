"""NAT emulation for the simulator, and RFC 5780 NAT detection run inside it.

`NatBox` is a `sim.Middlebox` with RFC 4787 behaviours: a mapping behaviour
(which outbound flows share a public port) and a filtering behaviour (which
inbound datagrams a mapping lets through), each endpoint-independent,
address-dependent or address-and-port-dependent. The four classic NATs:

=================  ===========================  ===========================
`NatBox.of_type`   mapping                      filtering
=================  ===========================  ===========================
full-cone          endpoint-independent         endpoint-independent
restricted         endpoint-independent         address-dependent
port-restricted    endpoint-independent         address-and-port-dependent
symmetric          address-and-port-dependent   address-and-port-dependent
=================  ===========================  ===========================

Invariants the box keeps:

* a host is behind the box when its IP is in `inside`; traffic between two
  inside hosts is not translated; anything else from inside gets the source
  (`public_host`, port of its mapping); an inside address is private, so a
  datagram from outside addressed to it directly is dropped;
* a mapping lives `mapping_timeout` seconds after the last datagram sent
  through it (outbound refresh only, RFC 4787 REQ-6); an expired mapping's
  port is never handed out again, so a flow that resumes gets a new port;
* an inbound datagram reaches the inside host only through a live mapping
  whose filter admits its source: anyone (EIF), an IP the host sent to (ADF),
  or an IP and port it sent to (APDF) through that mapping;
* hairpinning works (RFC 4787 REQ-9): inside -> own public address is
  translated out and back in like any other flow.

`SimStunServer` and `SimNatClient` are `sim.SimApp`s around the sans-IO
`BindingServer` and `NatClassifier`; `detect_nat_in_sim` runs one detection.
Datagrams only: stream messages bypass middleboxes.
"""

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, assert_never

from railgun_ref.capacity.nat import (
    NatBehaviour,
    NatClassifier,
    NatDetected,
    NatDetection,
    NatDetectionConfig,
    NatType,
    SendRequest,
)
from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import Address
from railgun_ref.drivers.sim import SendFrom, SimAppAction, Simulator
from railgun_ref.stun.server import DEFAULT_SOFTWARE, BindingServer, ServerAddresses, StunReply

#: RFC 4787 REQ-5: a UDP mapping MUST NOT expire in less than two minutes.
DEFAULT_MAPPING_TIMEOUT: Final = 120.0
#: Where public ports are handed out from (sequentially; RFC 4787 REQ-1 allows any).
FIRST_PUBLIC_PORT: Final = 20_000

#: Default sim addresses: the STUN server's two IPs and two ports, a NAT's public IP.
SIM_STUN_PRIMARY: Final[Address] = ("127.0.0.1", 3478)
SIM_STUN_ALTERNATE: Final[Address] = ("127.0.0.2", 3479)
SIM_NAT_PUBLIC_HOST: Final = "127.200.0.1"

_EIM, _ADM, _APDM = (
    NatBehaviour.ENDPOINT_INDEPENDENT,
    NatBehaviour.ADDRESS_DEPENDENT,
    NatBehaviour.ADDRESS_AND_PORT_DEPENDENT,
)

#: The classic NAT names as (mapping, filtering) behaviours.
NAT_BEHAVIOURS: Final[dict[NatType, tuple[NatBehaviour, NatBehaviour]]] = {
    NatType.FULL_CONE: (_EIM, _EIM),
    NatType.RESTRICTED: (_EIM, _ADM),
    NatType.PORT_RESTRICTED: (_EIM, _APDM),
    NatType.SYMMETRIC: (_APDM, _APDM),
}


@dataclass(slots=True)
class _Mapping:
    internal: Address
    public_port: int
    expires: float
    #: Remote (host, port)s the internal endpoint sent to through this mapping.
    permissions: set[Address] = field(default_factory=set)


class NatBoxCounter(StrEnum):
    """What a simulated NAT box counts (``nat.*``)."""

    INBOUND = "nat.inbound"
    INBOUND_FILTERED = "nat.inbound_filtered"
    INBOUND_NO_MAPPING = "nat.inbound_no_mapping"
    INBOUND_UNROUTABLE = "nat.inbound_unroutable"
    MAPPINGS_CREATED = "nat.mappings_created"
    MAPPINGS_EXPIRED = "nat.mappings_expired"
    OUTBOUND = "nat.outbound"
    PORTS_EXHAUSTED = "nat.ports_exhausted"


class NatBox:
    """One NAT in front of the hosts whose IP is in `inside` (see the module docstring)."""

    def __init__(
        self,
        *,
        public_host: str,
        inside: Iterable[str],
        mapping: NatBehaviour,
        filtering: NatBehaviour,
        mapping_timeout: float = DEFAULT_MAPPING_TIMEOUT,
        first_port: int = FIRST_PUBLIC_PORT,
    ) -> None:
        if mapping_timeout <= 0:
            raise ValueError("mapping_timeout must be positive")
        if not 1 <= first_port <= 0xFFFF:
            raise ValueError("first_port must be 1..65535")
        self.public_host = public_host
        self.inside = frozenset(inside)
        if public_host in self.inside:
            raise ValueError("the public address cannot also be inside")
        self.mapping = mapping
        self.filtering = filtering
        self.mapping_timeout = mapping_timeout
        self.counters: Counters[NatBoxCounter] = Counters()
        self._ports = itertools.count(first_port)
        self._by_key: dict[tuple[Address, str, int], _Mapping] = {}
        self._by_port: dict[int, _Mapping] = {}

    @classmethod
    def of_type(
        cls,
        nat_type: NatType,
        *,
        public_host: str = SIM_NAT_PUBLIC_HOST,
        inside: Iterable[str],
        mapping_timeout: float = DEFAULT_MAPPING_TIMEOUT,
    ) -> "NatBox":
        """A full-cone, restricted, port-restricted or symmetric NAT (`NAT_BEHAVIOURS`)."""
        if nat_type not in NAT_BEHAVIOURS:
            raise ValueError(f"no NAT box emulates {nat_type.value!r}")
        mapping, filtering = NAT_BEHAVIOURS[nat_type]
        return cls(
            public_host=public_host,
            inside=inside,
            mapping=mapping,
            filtering=filtering,
            mapping_timeout=mapping_timeout,
        )

    def __repr__(self) -> str:
        return f"<NatBox {self.public_host} {self.mapping.value}/{self.filtering.value}>"

    # ----------------------------------------------------------- Middlebox

    def outbound(self, src: Address, dst: Address, *, now: float) -> Address | None:
        if src[0] not in self.inside or dst[0] in self.inside:
            return src
        key = self._key(src, dst)
        entry = self._by_key.get(key)
        if entry is not None and entry.expires <= now:
            self._expire(key, entry)
            entry = None
        if entry is None:
            port = self._allocate_port()
            if port is None:
                self.counters.inc(NatBoxCounter.PORTS_EXHAUSTED)
                return None
            entry = _Mapping(src, port, now + self.mapping_timeout)
            self._by_key[key] = entry
            self._by_port[port] = entry
            self.counters.inc(NatBoxCounter.MAPPINGS_CREATED)
        entry.expires = now + self.mapping_timeout
        entry.permissions.add(dst)
        self.counters.inc(NatBoxCounter.OUTBOUND)
        return (self.public_host, entry.public_port)

    def inbound(self, src: Address, dst: Address, *, now: float) -> Address | None:
        if dst[0] in self.inside and src[0] not in self.inside:
            self.counters.inc(NatBoxCounter.INBOUND_UNROUTABLE)  # a private address, from outside
            return None
        if dst[0] != self.public_host:
            return dst
        entry = self._by_port.get(dst[1])
        if entry is None or entry.expires <= now:
            self.counters.inc(NatBoxCounter.INBOUND_NO_MAPPING)
            return None
        if not self._admits(entry, src):
            self.counters.inc(NatBoxCounter.INBOUND_FILTERED)
            return None
        self.counters.inc(NatBoxCounter.INBOUND)
        return entry.internal

    # ----------------------------------------------------------- inspection

    def active_mappings(self, *, now: float) -> int:
        return sum(1 for m in self._by_port.values() if m.expires > now)

    # ----------------------------------------------------------- internals

    def _key(self, src: Address, dst: Address) -> tuple[Address, str, int]:
        match self.mapping:
            case NatBehaviour.ENDPOINT_INDEPENDENT:
                return (src, "", 0)
            case NatBehaviour.ADDRESS_DEPENDENT:
                return (src, dst[0], 0)
            case NatBehaviour.ADDRESS_AND_PORT_DEPENDENT:
                return (src, dst[0], dst[1])

    def _admits(self, entry: _Mapping, src: Address) -> bool:
        match self.filtering:
            case NatBehaviour.ENDPOINT_INDEPENDENT:
                return True
            case NatBehaviour.ADDRESS_DEPENDENT:
                return any(host == src[0] for host, _ in entry.permissions)
            case NatBehaviour.ADDRESS_AND_PORT_DEPENDENT:
                return src in entry.permissions

    def _expire(self, key: tuple[Address, str, int], entry: _Mapping) -> None:
        del self._by_key[key]
        del self._by_port[entry.public_port]
        self.counters.inc(NatBoxCounter.MAPPINGS_EXPIRED)

    def _allocate_port(self) -> int | None:
        port = next(self._ports)
        return port if port <= 0xFFFF else None


# ------------------------------------------------------------------ sim apps


class SimStunServer:
    """A `SimApp`: the sans-IO `BindingServer` on its one or four addresses."""

    def __init__(self, addresses: ServerAddresses, *, software: str | None = DEFAULT_SOFTWARE):
        self.server = BindingServer(addresses, software=software)

    @property
    def addresses(self) -> ServerAddresses:
        return self.server.addresses

    def receive_datagram(self, data: bytes, src: Address, *, local: Address, now: float) -> None:
        self.server.receive(data, src, local=local, now=now)

    def next_action(self) -> SimAppAction | None:
        action = self.server.next_action()
        match action:
            case None:
                return None
            case StunReply(data=data, destination=destination, source=source):
                return SendFrom(data=data, destination=destination, source=source)
            case _:
                assert_never(action)

    def next_deadline(self) -> float | None:
        return None

    def on_timer(self, *, now: float) -> None:
        return None


class SimNatClient:
    """A `SimApp`: a `NatClassifier` on its one local address."""

    def __init__(self, classifier: NatClassifier) -> None:
        self.classifier = classifier

    def receive_datagram(self, data: bytes, src: Address, *, local: Address, now: float) -> None:
        self.classifier.receive_datagram(data, src, now=now)

    def next_action(self) -> SimAppAction | None:
        while (action := self.classifier.next_action()) is not None:
            match action:
                case SendRequest(data=data, destination=destination):
                    return SendFrom(
                        data=data, destination=destination, source=self.classifier.local
                    )
                case NatDetected():
                    pass  # `detect_nat_in_sim` reads `classifier.result`
                case _:
                    assert_never(action)
        return None

    def next_deadline(self) -> float | None:
        return self.classifier.next_deadline()

    def on_timer(self, *, now: float) -> None:
        self.classifier.on_timer(now=now)


def add_stun_server(
    sim: Simulator,
    *,
    primary: Address = SIM_STUN_PRIMARY,
    alternate: Address | None = SIM_STUN_ALTERNATE,
) -> SimStunServer:
    """Host an RFC 5780 STUN server in `sim` (four addresses; one if `alternate` is None)."""
    addresses = ServerAddresses(
        primary_host=primary[0],
        primary_port=primary[1],
        alternate_host=alternate[0] if alternate is not None else None,
        alternate_port=alternate[1] if alternate is not None else None,
    )
    server = SimStunServer(addresses)
    sim.add_app(server, *addresses.all())
    return server


def detect_nat_in_sim(
    sim: Simulator,
    local: Address,
    *,
    server: SimStunServer,
    config: NatDetectionConfig | None = None,
    tell_alternate: bool = False,
    time_limit: float = 600.0,
) -> NatDetection:
    """Run the RFC 5780 classifier from a new app at `local` against `server`, in virtual time.

    By default the client learns the alternate address from OTHER-ADDRESS, as
    a real client does; `tell_alternate` gives it up front instead. Raises
    RuntimeError if the run does not conclude within `time_limit` virtual seconds.
    """
    classifier = NatClassifier(
        primary=server.addresses.primary,
        alternate=server.addresses.alternate if tell_alternate else None,
        local=local,
        random_bytes=sim.rng.randbytes,
        config=config,
    )
    sim.add_app(SimNatClient(classifier), local)
    classifier.start(now=sim.now)
    sim.pump_app(local)
    limit = sim.now + time_limit
    while not classifier.done and sim.now <= limit and sim.step():
        pass
    if classifier.result is None:
        raise RuntimeError(f"NAT detection from {local} did not finish ({classifier.state.value})")
    return classifier.result
