"""An RFC 5780 STUN server on real UDP sockets, and NAT detection against it (anyio).

`StunServer` binds four sockets -- primary and alternate host, each on the
primary and the alternate port (127.0.0.1 and 127.0.0.2 by default, both
ports chosen by the OS and equal on the two hosts) -- and answers Binding
requests through the sans-IO `railgun_ref.stun.server.BindingServer`, pumped
by the shared `CoreLoop`, sending each reply from the socket the reply names
(that is how CHANGE-REQUEST is honoured). Each socket has one receiving task
and one sending task, since anyio forbids concurrent sends on a socket.
Whatever arrives -- garbage, responses, an ICMP error reported on the socket
-- is counted and the server goes on.

`detect_nat_type` runs the sans-IO `NatClassifier` from one UDP socket bound
to a loopback host, pumped by a `CoreLoop` on the event loop's clock (so it
also runs under trio's MockClock).

Both bind loopback unless `allow_public`; sends go where `drivers.addresses` allows.
"""

import contextlib
import os
from collections.abc import Callable
from enum import StrEnum
from typing import Final, assert_never

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from railgun_ref.capacity.nat import (
    NatAction,
    NatClassifier,
    NatDetected,
    NatDetection,
    NatDetectionConfig,
    SendRequest,
)
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import Address
from railgun_ref.drivers.addresses import check_bind_host, check_destination, family_of
from railgun_ref.drivers.loop import CoreLoop
from railgun_ref.drivers.udp_receive import udp_datagrams
from railgun_ref.stun.server import (
    DEFAULT_SOFTWARE,
    BindingServer,
    ServerAddresses,
    StunAction,
    StunReply,
)

#: How many times to pick new ports when one is taken on the other host.
_BIND_ATTEMPTS: Final = 16
#: Replies waiting per socket before new ones are dropped (and counted).
_QUEUE_SIZE: Final = 256
#: Bytes asked of the socket per datagram (any STUN message over UDP fits).
_MAX_DATAGRAM: Final = 65535

_Queue = MemoryObjectSendStream[tuple[bytes, Address]]


class StunDriverCounter(StrEnum):
    """What the STUN driver itself counts (the core counts the protocol: `StunCounter`)."""

    UDP_RECEIVE_ERROR = "driver.udp_receive_error"
    REFUSED_ADDRESS = "driver.refused_address"  #: a destination `drivers.addresses` refuses
    SEND_QUEUE_FULL = "driver.send_queue_full"
    SEND_QUEUE_CLOSED = "driver.send_queue_closed"
    SENDTO_FAILED = "driver.sendto_failed"


def _port_of(sock: anyio.abc.UDPSocket) -> int:
    address = sock.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    port = address[1]
    assert isinstance(port, int)
    return port


async def _udp_socket(host: str, port: int) -> anyio.abc.UDPSocket:
    return await anyio.create_udp_socket(family=family_of(host), local_host=host, local_port=port)


class StunServer:
    """An RFC 5780 STUN server. Run it with ``await tg.start(server.run)``.

    `primary_port` / `alternate_port` of 0 let the OS choose (the same number
    on both hosts). `alternate_host=None` makes a single-socket RFC 8489 server
    that refuses CHANGE-REQUEST with 420.
    """

    def __init__(
        self,
        *,
        primary_host: str = "127.0.0.1",
        alternate_host: str | None = "127.0.0.2",
        primary_port: int = 0,
        alternate_port: int = 0,
        software: str | None = DEFAULT_SOFTWARE,
        allow_public: bool = False,
        core_class: type[BindingServer] = BindingServer,
    ) -> None:
        """`core_class` is the protocol core to run: a subclass only in the conformance
        tests, whose deliberately broken servers must fail the runner."""
        check_bind_host(primary_host, allow_public=allow_public)
        if alternate_host is not None:
            check_bind_host(alternate_host, allow_public=allow_public)
            if alternate_host == primary_host:
                raise ValueError("the alternate host must differ from the primary host")
        for port in (primary_port, alternate_port):
            if not 0 <= port <= 0xFFFF:
                raise ValueError(f"port must be 0..65535, got {port}")
        if primary_port and primary_port == alternate_port:
            raise ValueError("the alternate port must differ from the primary port")
        self._primary_host = primary_host
        self._alternate_host = alternate_host
        self._primary_port = primary_port
        self._alternate_port = alternate_port
        self._software = software
        self._core_class = core_class
        self._server: BindingServer | None = None
        self._queues: dict[Address, _Queue] = {}
        self._loop = CoreLoop(clock=anyio.current_time)
        #: What the driver counts; the protocol's counts are ``core.counters``.
        self.driver_counters: Counters[StunDriverCounter] = Counters()

    @property
    def addresses(self) -> ServerAddresses:
        """The bound addresses; only once `run` has reported itself started."""
        if self._server is None:
            raise RuntimeError("the STUN server is not bound yet: start run() first")
        return self._server.addresses

    @property
    def primary(self) -> Address:
        return self.addresses.primary

    @property
    def alternate(self) -> Address | None:
        return self.addresses.alternate

    @property
    def core(self) -> BindingServer:
        if self._server is None:
            raise RuntimeError("the STUN server is not bound yet: start run() first")
        return self._server

    @property
    def counters(self) -> dict[str, int]:
        """``stun.*`` counts of the protocol core plus the driver's own ``driver.*``, flat."""
        merged = self._server.counters.snapshot() if self._server is not None else {}
        return {**merged, **self.driver_counters.snapshot()}

    async def run(
        self, *, task_status: anyio.abc.TaskStatus["StunServer"] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, report `self` through `task_status`, serve until cancelled."""
        if self._server is not None:
            raise RuntimeError("a StunServer runs only once; make a new one")
        sockets, ports = await self._bind()
        self._server = self._core_class(self._addresses_of(ports), software=self._software)
        core: ProtocolCore[StunAction] = self._server
        try:
            async with anyio.create_task_group() as tg:
                for address, sock in sockets.items():
                    send, receive = anyio.create_memory_object_stream[tuple[bytes, Address]](
                        _QUEUE_SIZE
                    )
                    self._queues[address] = send
                    tg.start_soon(self._send_loop, sock, receive)
                self._loop.add(core, self._dispatch)
                tg.start_soon(self._loop.run)
                for address, sock in sockets.items():
                    tg.start_soon(self._receive_loop, sock, address)
                task_status.started(self)
        finally:
            for queue in self._queues.values():
                queue.close()
            for sock in sockets.values():
                await sock.aclose()

    # ------------------------------------------------------------- internals

    def _addresses_of(self, ports: list[int]) -> ServerAddresses:
        if self._alternate_host is None:
            return ServerAddresses(primary_host=self._primary_host, primary_port=ports[0])
        return ServerAddresses(
            primary_host=self._primary_host,
            primary_port=ports[0],
            alternate_host=self._alternate_host,
            alternate_port=ports[1],
        )

    async def _bind(self) -> tuple[dict[Address, anyio.abc.UDPSocket], list[int]]:
        """Bind every (host, port) pair, choosing free ports common to both hosts.

        Returns the sockets and the ports in order (primary, then alternate).
        """
        hosts = [self._primary_host]
        wanted = [self._primary_port]
        if self._alternate_host is not None:
            hosts.append(self._alternate_host)
            wanted.append(self._alternate_port)
        bound: dict[Address, anyio.abc.UDPSocket] = {}
        ports: list[int] = []
        try:
            for want in wanted:
                for attempt in range(_BIND_ATTEMPTS):
                    first = await _udp_socket(hosts[0], want)
                    port = _port_of(first)
                    if port in ports:  # cannot happen while the other socket is open; be safe
                        await first.aclose()
                        continue
                    try:
                        others = [await _udp_socket(host, port) for host in hosts[1:]]
                    except OSError:
                        await first.aclose()
                        if want or attempt == _BIND_ATTEMPTS - 1:
                            raise
                        continue
                    ports.append(port)
                    bound[(hosts[0], port)] = first
                    for host, sock in zip(hosts[1:], others, strict=True):
                        bound[(host, port)] = sock
                    break
                else:
                    raise OSError("could not find a port free on every STUN server host")
        except BaseException:
            for sock in bound.values():
                await sock.aclose()
            raise
        return bound, ports

    def _count_receive_error(self) -> None:
        self.driver_counters.inc(StunDriverCounter.UDP_RECEIVE_ERROR)

    async def _receive_loop(self, sock: anyio.abc.UDPSocket, local: Address) -> None:
        core = self.core
        async for data, source in udp_datagrams(sock, on_error=self._count_receive_error):
            core.receive(data, source, local=local, now=self._loop.now())
            self._loop.poke()

    def _dispatch(self, action: StunAction) -> None:
        """Queue one reply on the socket it must leave from; never blocks."""
        match action:
            case StunReply(data=data, destination=destination, source=source):
                try:
                    check_destination(destination)
                except ValueError:
                    self.driver_counters.inc(StunDriverCounter.REFUSED_ADDRESS)
                    return
                try:
                    self._queues[source].send_nowait((data, destination))
                except anyio.WouldBlock:
                    self.driver_counters.inc(StunDriverCounter.SEND_QUEUE_FULL)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    self.driver_counters.inc(StunDriverCounter.SEND_QUEUE_CLOSED)
            case _:
                assert_never(action)

    async def _send_loop(
        self,
        sock: anyio.abc.UDPSocket,
        queue: MemoryObjectReceiveStream[tuple[bytes, Address]],
    ) -> None:
        async with queue:
            async for data, (host, port) in queue:
                try:
                    await sock.sendto(data, host, port)
                except anyio.ClosedResourceError:
                    return
                except (anyio.BrokenResourceError, OSError):
                    self.driver_counters.inc(StunDriverCounter.SENDTO_FAILED)


async def serve_stun(
    *,
    primary_host: str = "127.0.0.1",
    alternate_host: str | None = "127.0.0.2",
    primary_port: int = 0,
    alternate_port: int = 0,
    software: str | None = DEFAULT_SOFTWARE,
    task_status: anyio.abc.TaskStatus[StunServer] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve STUN until cancelled; ``server = await tg.start(serve_stun)`` gives the handle."""
    server = StunServer(
        primary_host=primary_host,
        alternate_host=alternate_host,
        primary_port=primary_port,
        alternate_port=alternate_port,
        software=software,
    )
    await server.run(task_status=task_status)


async def detect_nat_type(
    server_primary: Address,
    server_alternate: Address | None = None,
    *,
    local_host: str = "127.0.0.1",
    local_port: int = 0,
    config: NatDetectionConfig | None = None,
    random_bytes: Callable[[int], bytes] = os.urandom,
    allow_public: bool = False,
) -> NatDetection:
    """Classify the NAT between `local_host` and the STUN server (RFC 5780 §4.3/§4.4).

    `server_alternate` is the server's OTHER-ADDRESS if known; otherwise the
    first response's OTHER-ADDRESS is used. Takes as long as the tests do:
    with no NAT and a responsive server, a few round trips; each silent test
    costs ``rto * (2**max_transmissions - 1)`` seconds (3.5 s by default).
    """
    check_destination(server_primary)
    if server_alternate is not None:
        check_destination(server_alternate)
    check_bind_host(local_host, allow_public=allow_public)
    async with await _udp_socket(local_host, local_port) as sock:
        classifier = NatClassifier(
            primary=server_primary,
            alternate=server_alternate,
            local=(local_host, _port_of(sock)),
            random_bytes=random_bytes,
            config=config,
        )
        return await _NatProbe(sock, classifier).run()


class _NatProbe:
    """Pumps one `NatClassifier` on one socket with a `CoreLoop` until it concludes."""

    def __init__(self, sock: anyio.abc.UDPSocket, classifier: NatClassifier) -> None:
        self._sock = sock
        self._classifier = classifier
        self._loop = CoreLoop(clock=anyio.current_time)
        self._outbox, self._sending = anyio.create_memory_object_stream[tuple[bytes, Address]](
            _QUEUE_SIZE
        )
        self._result: NatDetection | None = None
        self._done = anyio.Event()

    async def run(self) -> NatDetection:
        classifier = self._classifier
        core: ProtocolCore[NatAction] = classifier
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._send_loop)
            tg.start_soon(self._receive_loop)
            classifier.start(now=self._loop.now())
            self._loop.add(core, self._dispatch)
            tg.start_soon(self._loop.run)
            await self._done.wait()
            tg.cancel_scope.cancel()
        assert self._result is not None
        return self._result

    def _dispatch(self, action: NatAction) -> None:
        match action:
            case SendRequest(data=data, destination=destination):
                # A request lost here is like one lost on the wire: it is retransmitted.
                with contextlib.suppress(anyio.WouldBlock):
                    self._outbox.send_nowait((data, destination))
            case NatDetected(detection=detection):
                self._result = detection
                self._done.set()
            case _:
                assert_never(action)

    async def _send_loop(self) -> None:
        async with self._sending:
            async for data, destination in self._sending:
                try:
                    check_destination(destination)
                    await self._sock.sendto(data, *destination)
                except (ValueError, OSError, anyio.BrokenResourceError):
                    pass  # the test times out, as if the request was lost

    async def _receive_loop(self) -> None:
        async for data, source in udp_datagrams(self._sock, on_error=_ignore):
            self._classifier.receive_datagram(data, source, now=self._loop.now())
            self._loop.poke()


def _ignore() -> None:
    """A receive error (an ICMP error from a silent server): the test just times out."""
