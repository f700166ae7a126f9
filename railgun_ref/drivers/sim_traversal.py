"""NAT traversal in the simulator: the traversal and relay cores as `SimApp`s behind `NatBox`es.

`traverse_in_sim` builds one relay on the open network and two peers, each
either open or behind its own NAT box of the given type, registers both with
the relay and runs one connection attempt from the first to the second, in
virtual time. The same cores run on real sockets in `netlab.traversal`.
"""

from dataclasses import dataclass, field
from typing import Final, assert_never

from railgun_ref.capacity.nat import NatType
from railgun_ref.core.ids import Address
from railgun_ref.drivers.sim import SendFrom, SimAppAction, Simulator
from railgun_ref.drivers.sim_nat import NatBox
from railgun_ref.identity.keys import Identity
from railgun_ref.traversal.punch import (
    Registered,
    SendDatagram,
    TraversalConfig,
    TraversalCore,
    TraversalFinished,
)
from railgun_ref.traversal.relay import RelayCore, RelaySend

SIM_RELAY: Final[Address] = ("127.0.0.1", 4000)
#: (inside address, NAT public IP) of the two peers
SIM_PEERS: Final[tuple[tuple[Address, str], tuple[Address, str]]] = (
    (("127.10.0.1", 5000), "127.200.0.1"),
    (("127.10.0.2", 5000), "127.200.0.2"),
)


@dataclass(slots=True)
class SimTraversalApp:
    """A `SimApp`: one `TraversalCore` on one address; keeps what it reported."""

    core: TraversalCore
    address: Address
    finished: list[TraversalFinished] = field(default_factory=list)
    sent_to: list[Address] = field(default_factory=list)

    def receive_datagram(self, data: bytes, src: Address, *, local: Address, now: float) -> None:
        self.core.receive_datagram(data, src, now=now)

    def next_action(self) -> SimAppAction | None:
        while (action := self.core.next_action()) is not None:
            match action:
                case SendDatagram(data=data, destination=destination):
                    self.sent_to.append(destination)
                    return SendFrom(data=data, destination=destination, source=self.address)
                case Registered():
                    pass  # the core keeps `observed`
                case TraversalFinished():
                    self.finished.append(action)
                case _:
                    assert_never(action)
        return None

    def next_deadline(self) -> float | None:
        return self.core.next_deadline()

    def on_timer(self, *, now: float) -> None:
        self.core.on_timer(now=now)


@dataclass(slots=True)
class SimRelayApp:
    """A `SimApp`: the `RelayCore` on one address."""

    core: RelayCore
    address: Address

    def receive_datagram(self, data: bytes, src: Address, *, local: Address, now: float) -> None:
        self.core.receive_datagram(data, src, now=now)

    def next_action(self) -> SimAppAction | None:
        action = self.core.next_action()
        match action:
            case None:
                return None
            case RelaySend(data=data, destination=destination):
                return SendFrom(data=data, destination=destination, source=self.address)
            case _:
                assert_never(action)

    def next_deadline(self) -> float | None:
        return self.core.next_deadline()

    def on_timer(self, *, now: float) -> None:
        self.core.on_timer(now=now)


@dataclass(slots=True)
class SimTraversal:
    sim: Simulator
    relay: SimRelayApp
    peers: tuple[SimTraversalApp, SimTraversalApp]


def build_pair(
    nat_a: NatType,
    nat_b: NatType,
    *,
    seed: int,
    config: TraversalConfig | None = None,
) -> SimTraversal:
    """A relay and two registered peers (open or behind their own NAT box); links 25 ms."""
    sim = Simulator(seed=seed)
    relay = SimRelayApp(RelayCore(Identity.generate(sim.rng.randbytes)), SIM_RELAY)
    sim.add_app(relay, SIM_RELAY)
    apps = []
    for nat, (inside, public) in zip((nat_a, nat_b), SIM_PEERS, strict=True):
        address = (public, inside[1]) if nat is NatType.OPEN else inside
        if nat is not NatType.OPEN:
            sim.network.middleboxes.append(
                NatBox.of_type(nat, public_host=public, inside=[inside[0]])
            )
        core = TraversalCore(
            Identity.generate(sim.rng.randbytes),
            relay=SIM_RELAY,
            random_bytes=sim.rng.randbytes,
            nat=nat,
            config=config,
        )
        app = SimTraversalApp(core, address)
        sim.add_app(app, address)
        apps.append(app)
    a, b = apps
    for app in apps:
        app.core.register(now=sim.now)
        sim.pump_app(app.address)
    sim.run_for(1.0)
    return SimTraversal(sim=sim, relay=relay, peers=(a, b))


def traverse_in_sim(
    nat_a: NatType,
    nat_b: NatType,
    *,
    seed: int,
    config: TraversalConfig | None = None,
    time_limit: float = 30.0,
) -> tuple[TraversalFinished, TraversalFinished]:
    """One attempt from a peer behind `nat_a` to one behind `nat_b`: what each side reported."""
    built = build_pair(nat_a, nat_b, seed=seed, config=config)
    a, b = built.peers
    a.core.connect(b.core.identity.node_id, now=built.sim.now)
    built.sim.pump_app(a.address)
    built.sim.run_for(time_limit)
    if not a.finished or not b.finished:
        raise RuntimeError("the attempt did not finish within the time limit")
    return a.finished[0], b.finished[0]
