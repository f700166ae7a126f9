"""The traversal and relay cores (spec §20) on real UDP sockets (anyio).

`TraversalHost` runs one `TraversalCore` on one UDP socket: the socket the
node registers with its relay from is the one it punches from, so the NAT
mapping the relay observed is the one peers are given. `RelayHost` runs a
`RelayCore`. Both pump their core with the shared `CoreLoop`; one task sends
every datagram (a bounded queue; anyio forbids concurrent sends). Sends go
only where `drivers.addresses` allows; anything refused or undeliverable is
counted and the attempt times out like a lost datagram.
"""

import os
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Final, assert_never

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from railgun_ref.capacity.nat import NatType
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.addresses import check_bind_host, check_destination, family_of
from railgun_ref.drivers.loop import CoreLoop
from railgun_ref.drivers.udp_receive import udp_datagrams
from railgun_ref.identity.keys import Identity
from railgun_ref.traversal.punch import (
    Registered,
    SendDatagram,
    TraversalAction,
    TraversalConfig,
    TraversalCore,
    TraversalFinished,
)
from railgun_ref.traversal.relay import RelayAction, RelayConfig, RelayCore, RelaySend

_QUEUE: Final = 1024


class TraversalDriverCounter(StrEnum):
    REFUSED_ADDRESS = "driver.refused_address"
    SEND_QUEUE_FULL = "driver.send_queue_full"
    SENDTO_FAILED = "driver.sendto_failed"
    RECEIVE_ERROR = "driver.receive_error"


class _Sender:
    """One socket's send queue and task."""

    def __init__(self, counters: Counters[TraversalDriverCounter]) -> None:
        self.counters = counters
        self.send, self.receive = anyio.create_memory_object_stream[tuple[bytes, Address]](_QUEUE)

    def enqueue(self, data: bytes, destination: Address) -> None:
        try:
            check_destination(destination)
        except ValueError:
            self.counters.inc(TraversalDriverCounter.REFUSED_ADDRESS)
            return
        try:
            self.send.send_nowait((data, destination))
        except anyio.WouldBlock:
            self.counters.inc(TraversalDriverCounter.SEND_QUEUE_FULL)

    async def run(self, sock: anyio.abc.UDPSocket) -> None:
        async with self.receive:
            async for data, destination in self.receive:
                try:
                    await sock.sendto(data, *destination)
                except OSError:
                    self.counters.inc(TraversalDriverCounter.SENDTO_FAILED)


async def _bind(host: str, port: int) -> tuple[anyio.abc.UDPSocket, Address]:
    sock = await anyio.create_udp_socket(family=family_of(host), local_host=host, local_port=port)
    local = sock.extra(SocketAttribute.local_address)
    assert isinstance(local, tuple)
    return sock, (str(local[0]), int(local[1]))


class TraversalHost:
    """A node's traversal core on a UDP socket: ``address = await tg.start(host.run)``."""

    def __init__(
        self,
        identity: Identity,
        *,
        relay: Address,
        host: str = "127.0.0.1",
        port: int = 0,
        nat: NatType = NatType.UNKNOWN,
        config: TraversalConfig | None = None,
        allow_public: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_bind_host(host, allow_public=allow_public)
        check_destination(relay)
        self.core = TraversalCore(
            identity, relay=relay, random_bytes=os.urandom, nat=nat, config=config
        )
        self.counters: Counters[TraversalDriverCounter] = Counters()
        self._host, self._port = host, port
        self._loop = CoreLoop(clock=clock)
        self._sender = _Sender(self.counters)
        self._registered = anyio.Event()
        self._waiting: dict[NodeId, anyio.Event] = {}
        self.finished: list[TraversalFinished] = []  #: every attempt this node took part in
        self._on_finished = anyio.Event()

    def _dispatch(self, action: TraversalAction) -> None:
        match action:
            case SendDatagram(data=data, destination=destination):
                self._sender.enqueue(data, destination)
            case Registered():
                self._registered.set()
            case TraversalFinished(peer=peer):
                self.finished.append(action)
                self._on_finished.set()
                if peer in self._waiting:
                    self._waiting[peer].set()
            case _:
                assert_never(action)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Address] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        sock, address = await _bind(self._host, self._port)
        core: ProtocolCore[TraversalAction] = self.core  # declared: mypy infers A from it
        self._loop.add(core, self._dispatch)
        async with sock, anyio.create_task_group() as tg:
            tg.start_soon(self._sender.run, sock)
            tg.start_soon(self._loop.run)
            task_status.started(address)
            async for data, src in udp_datagrams(sock, on_error=self._receive_error):
                self.core.receive_datagram(data, src, now=self._loop.now())
                self._loop.poke()

    def _receive_error(self) -> None:
        self.counters.inc(TraversalDriverCounter.RECEIVE_ERROR)

    async def register(self, *, timeout: float = 5.0) -> Address:
        """REGISTER with the relay; the address it observed (TimeoutError if it does not answer)."""
        self.core.register(now=self._loop.now())
        self._loop.poke()
        with anyio.fail_after(timeout):
            await self._registered.wait()
        assert self.core.observed is not None
        return self.core.observed

    def start_connect(self, peer: NodeId) -> None:
        """Start one connection attempt to `peer`; its end appears in `finished`."""
        self.core.connect(peer, now=self._loop.now())
        self._loop.poke()

    async def connect(self, peer: NodeId) -> TraversalFinished:
        """Run one connection attempt to `peer`; what this side concluded."""
        done = self._waiting[peer] = anyio.Event()
        before = len(self.finished)
        self.core.connect(peer, now=self._loop.now())
        self._loop.poke()
        try:
            await done.wait()
        finally:
            del self._waiting[peer]
        return next(f for f in self.finished[before:] if f.peer == peer)

    async def next_finished(self, count: int) -> TraversalFinished:
        """Wait until at least `count` attempts finished; the `count`-th."""
        while len(self.finished) < count:
            self._on_finished = anyio.Event()
            await self._on_finished.wait()
        return self.finished[count - 1]


class RelayHost:
    """The relay core on a UDP socket: ``address = await tg.start(relay.run)``."""

    def __init__(
        self,
        identity: Identity,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        config: RelayConfig | None = None,
        allow_public: bool = False,
    ) -> None:
        check_bind_host(host, allow_public=allow_public)
        self.core = RelayCore(identity, config=config)
        self.counters: Counters[TraversalDriverCounter] = Counters()
        self._host, self._port = host, port
        self._loop = CoreLoop()
        self._sender = _Sender(self.counters)

    def _dispatch(self, action: RelayAction) -> None:
        match action:
            case RelaySend(data=data, destination=destination):
                self._sender.enqueue(data, destination)
            case _:
                assert_never(action)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Address] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        sock, address = await _bind(self._host, self._port)
        self._loop.add(self.core, self._dispatch)
        async with sock, anyio.create_task_group() as tg:
            tg.start_soon(self._sender.run, sock)
            tg.start_soon(self._loop.run)
            task_status.started(address)
            async for data, src in udp_datagrams(sock, on_error=self._receive_error):
                self.core.receive_datagram(data, src, now=self._loop.now())
                self._loop.poke()

    def _receive_error(self) -> None:
        self.counters.inc(TraversalDriverCounter.RECEIVE_ERROR)
