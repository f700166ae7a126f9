"""The peer-hosted TURN server on real UDP sockets (anyio), around `railgun_ref.relay.turn`.

One listening socket (loopback, or any interface with ``allow_public``) takes
what clients send; each allocation gets its own relayed UDP socket on an
ephemeral port of ``relay_host`` (127.0.0.1 by default; the CLI uses the
listening host), opened when the core asks for it
(`OpenRelay`) and closed when the core lets the allocation go (`CloseRelay`:
Refresh with LIFETIME 0, or expiry). Every socket has one receiving task and
one sending task fed by a bounded queue, since anyio forbids concurrent sends
on a socket. The core is pumped by the shared `CoreLoop` (drivers/loop.py):
every input is followed by ``poke()``, which drains its actions into
`_dispatch`, and the loop's timer task runs `on_timer` at `next_deadline`,
so allocations expire even when nothing arrives.

EVEN-PORT (TURN-1.12): the driver binds ephemeral ports until it gets an
even one (and, when asked to reserve, one whose next port up is free too,
which it keeps bound under the core's RESERVATION-TOKEN until an Allocate
takes it or the core releases it); after `_EVEN_PORT_TRIES` tries the
Allocate gets 508.

Time is the event loop's clock (`anyio.current_time`), so the server also
runs under trio's MockClock. Randomness (the nonce secret, Data indication
transaction ids) comes from ``random_bytes``, `os.urandom` unless injected.

Whatever arrives -- garbage, datagrams for expired allocations, replies to
addresses `drivers.addresses` refuses, full queues, receive errors --
is counted (``core.counters``: `TurnCounter`; ``driver_counters``:
`TurnDriverCounter`; ``counters`` is the flat union of both)
and the server goes on. A loopback server relays to loopback peers only.
"""

import asyncio.trsock
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from enum import StrEnum
from typing import Final, assert_never

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from railgun_ref.capacity.nat import NatType
from railgun_ref.capacity.sharing import DEFAULT_SHARING, CapacitySharing, CapacitySharingConfig
from railgun_ref.capacity.types import Availability, DeviceCapabilities, DeviceClass
from railgun_ref.core.contract import ProtocolCore
from railgun_ref.core.counters import Counters
from railgun_ref.core.errors import LocalProtocolError
from railgun_ref.core.ids import Address, NodeId
from railgun_ref.drivers.addresses import check_bind_host, check_destination, family_of
from railgun_ref.drivers.console import UsageError
from railgun_ref.drivers.loop import CoreLoop
from railgun_ref.drivers.udp_receive import udp_datagrams
from railgun_ref.relay.credentials import DEFAULT_CREDENTIAL_TTL, TurnCredential, issue_credential
from railgun_ref.relay.turn import (
    AllocationId,
    AllocationInfo,
    CloseRelay,
    OpenRelay,
    ReleaseReservation,
    SendToClient,
    SendToPeer,
    TurnAction,
    TurnConfig,
    TurnServer,
)

#: Datagrams waiting per socket before new ones are dropped (and counted).
_QUEUE_SIZE: Final = 512
#: A loopback server relays to loopback peers only: the core answers 403 for anything else.
LOOPBACK_PEERS: Final = ("127.0.0.0/8",)

#: What a TURN host shares when no capabilities are given: a plugged-in server
#: with 20 relay connections and 1 MB/s of relay bandwidth.
DEFAULT_TURN_CAPABILITIES: Final = DeviceCapabilities(
    device_class=DeviceClass.SERVER,
    upload_bandwidth=2_000_000,
    download_bandwidth=2_000_000,
    max_relay_connections=20,
    max_relay_bandwidth=1_000_000,
    can_act_as_turn=True,
    can_store_messages=False,
    nat_type=NatType.OPEN,
    availability=Availability.ALWAYS,
)

_Queue = MemoryObjectSendStream[tuple[bytes, Address]]
#: SO_RCVBUF asked for every socket (the kernel caps it at net.core.rmem_max). The
#: listening socket carries every client's media: Linux's default ~200 KB holds about a
#: hundred datagrams, under 0.1 s of a four-person video call, and a process that the
#: scheduler holds back longer than that lost the rest.
_RECEIVE_BUFFER: Final = 4 << 20
#: Datagrams a send task sends in one turn of the event loop before it lets others run.
_SEND_BURST: Final = 64
#: TURN-1.12: ephemeral binds tried for an even port (or an even/odd pair) before 508.
_EVEN_PORT_TRIES: Final = 64


class TurnDriverCounter(StrEnum):
    """What the TURN driver itself counts (the core counts the protocol: `TurnCounter`)."""

    RELAY_NOT_OPEN = "driver.relay_not_open"  #: data for a relay whose socket is not open
    REFUSED_ADDRESS = "driver.refused_address"  #: a destination `drivers.addresses` refuses
    SEND_QUEUE_FULL = "driver.send_queue_full"
    SEND_QUEUE_CLOSED = "driver.send_queue_closed"
    RELAY_BIND_FAILED = "driver.relay_bind_failed"
    RELAYS_OPENED = "driver.relays_opened"
    RELAYS_CLOSED = "driver.relays_closed"
    UDP_RECEIVE_ERROR = "driver.udp_receive_error"
    SENDTO_FAILED = "driver.sendto_failed"


class TurnUdpServer:
    """A TURN server. Run it with ``server = await tg.start(turn.run)``.

    `users` maps user names to passwords. Quotas come from `sharing` when given
    (the node's own `CapacitySharing`, whose ``now`` must be this event loop's
    clock), else from `capabilities` and `sharing_config` (TURN-1.6).
    """

    def __init__(
        self,
        *,
        users: Mapping[str, str],
        realm: str = "railgun",
        host: str = "127.0.0.1",
        port: int = 0,
        relay_host: str = "127.0.0.1",
        config: TurnConfig | None = None,
        sharing: CapacitySharing | None = None,
        capabilities: DeviceCapabilities = DEFAULT_TURN_CAPABILITIES,
        sharing_config: CapacitySharingConfig = DEFAULT_SHARING,
        random_bytes: Callable[[int], bytes] = os.urandom,
        allow_public: bool = False,
        core_class: type[TurnServer] = TurnServer,
        credential_secret: bytes | None = None,
    ) -> None:
        """`core_class` is the protocol core to run: a subclass only in the conformance
        tests, whose deliberately broken servers must fail the runner."""
        check_bind_host(host, allow_public=allow_public)
        check_bind_host(relay_host, allow_public=allow_public)
        #: TURN-2.1: with a secret, `issue_credential` hands out member credentials.
        self.credential_secret = credential_secret
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"port must be 0..65535, got {port}")
        peers = ("0.0.0.0/0",) if allow_public else LOOPBACK_PEERS
        self._config = config or TurnConfig(realm=realm, allowed_peers=peers)
        self._users = dict(users)
        self._host = host
        self._port = port
        self._relay_host = relay_host
        self._sharing = sharing
        self._capabilities = capabilities
        self._sharing_config = sharing_config
        self._random_bytes = random_bytes
        self._core_class = core_class
        self._core: TurnServer | None = None
        self._address: Address | None = None
        self._client_queue: _Queue | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._relay_scopes: dict[AllocationId, anyio.CancelScope] = {}
        self._relay_queues: dict[AllocationId, _Queue] = {}
        self._relay_addresses: dict[AllocationId, Address] = {}
        #: TURN-1.12: sockets held for RESERVATION-TOKENs, by token
        self._reserved: dict[bytes, socket.socket] = {}
        self._loop = CoreLoop(clock=anyio.current_time)
        #: What the driver counts; the protocol's counts are ``core.counters``.
        self.driver_counters: Counters[TurnDriverCounter] = Counters()

    def issue_credential(
        self, member: NodeId, *, ttl: int = DEFAULT_CREDENTIAL_TTL
    ) -> TurnCredential:
        """TURN-2.1: a short-lived credential for room member `member`."""
        if self.credential_secret is None:
            raise LocalProtocolError("this TURN server has no credential secret")
        return issue_credential(self.credential_secret, member, now=time.time(), ttl=ttl)

    @property
    def address(self) -> Address:
        """The listening address; only once `run` has reported itself started."""
        if self._address is None:
            raise RuntimeError("the TURN server is not bound yet: start run() first")
        return self._address

    @property
    def core(self) -> TurnServer:
        if self._core is None:
            raise RuntimeError("the TURN server is not running yet: start run() first")
        return self._core

    @property
    def counters(self) -> dict[str, int]:
        """``turn.*`` counts of the protocol core plus the driver's own ``driver.*``, flat."""
        merged = self._core.counters.snapshot() if self._core is not None else {}
        return {**merged, **self.driver_counters.snapshot()}

    def allocations(self) -> tuple[AllocationInfo, ...]:
        return self.core.allocations()

    @property
    def relay_sockets(self) -> dict[AllocationId, Address]:
        """The relayed sockets open now, by allocation."""
        return dict(self._relay_addresses)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus["TurnUdpServer"] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, report `self` through `task_status`, serve until cancelled."""
        if self._core is not None:
            raise RuntimeError("a TurnUdpServer runs only once; make a new one")
        sharing = self._sharing or CapacitySharing(
            self._capabilities, self._sharing_config, now=anyio.current_time()
        )
        self._core = self._core_class(
            self._config,
            users=self._users,
            sharing=sharing,
            random_bytes=self._random_bytes,
            credential_secret=self.credential_secret,
            unix_offset=time.time() - anyio.current_time(),
        )
        # Declared, because mypy does not infer `A` of `add` from a union of actions.
        core: ProtocolCore[TurnAction] = self._core
        sock = await anyio.create_udp_socket(
            family=family_of(self._host), local_host=self._host, local_port=self._port
        )
        _widen_receive_buffer(sock.extra(SocketAttribute.raw_socket))
        self._address = (self._host, _port_of(sock))
        send, receive = anyio.create_memory_object_stream[tuple[bytes, Address]](_QUEUE_SIZE)
        self._client_queue = send
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                tg.start_soon(self._send_loop, sock, receive)
                tg.start_soon(self._client_receive_loop, sock)
                self._loop.add(core, self._dispatch)
                tg.start_soon(self._loop.run)
                task_status.started(self)
        finally:
            send.close()
            await sock.aclose()
            for held in self._reserved.values():
                held.close()
            self._reserved.clear()

    # ---------------------------------------------------------- internals

    def _dispatch(self, action: TurnAction) -> None:
        """Carry out one action of the core; never blocks."""
        match action:
            case SendToClient(client=client, data=data):
                self._enqueue(self._client_queue, data, client)
            case SendToPeer(allocation=allocation, peer=peer, data=data):
                queue = self._relay_queues.get(allocation)
                if queue is None:
                    self.driver_counters.inc(TurnDriverCounter.RELAY_NOT_OPEN)
                else:
                    self._enqueue(queue, data, peer)
            case OpenRelay():
                scope = anyio.CancelScope()
                self._relay_scopes[action.allocation] = scope
                assert self._task_group is not None
                self._task_group.start_soon(self._run_relay, action, scope)
            case ReleaseReservation(token=token):
                held = self._reserved.pop(token, None)
                if held is not None:
                    held.close()
            case CloseRelay(allocation=allocation):
                closing = self._relay_scopes.pop(allocation, None)
                if closing is not None:
                    closing.cancel()
                queue = self._relay_queues.pop(allocation, None)
                if queue is not None:
                    queue.close()
                self._relay_addresses.pop(allocation, None)
            case _:
                assert_never(action)

    def _enqueue(self, queue: _Queue | None, data: bytes, destination: Address) -> None:
        try:
            check_destination(destination)
        except ValueError:
            self.driver_counters.inc(TurnDriverCounter.REFUSED_ADDRESS)
            return
        if queue is None:
            return
        try:
            queue.send_nowait((data, destination))
        except anyio.WouldBlock:
            self.driver_counters.inc(TurnDriverCounter.SEND_QUEUE_FULL)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.driver_counters.inc(TurnDriverCounter.SEND_QUEUE_CLOSED)

    def _bind_relay(self, request: OpenRelay) -> socket.socket:
        """TURN-1.12: the relayed socket `request` asks for (OSError when none can be had)."""
        if request.reserved is not None:
            held = self._reserved.pop(request.reserved, None)
            if held is None:
                raise OSError("no socket held for this RESERVATION-TOKEN")
            return held
        rejected: list[socket.socket] = []
        try:
            for _ in range(_EVEN_PORT_TRIES if request.even else 1):
                sock = _udp_bind(self._relay_host, 0)
                port = sock.getsockname()[1]
                if not request.even:
                    return sock
                if port % 2 == 0:
                    if request.reserve is None:
                        return sock
                    try:
                        self._reserved[request.reserve] = _udp_bind(self._relay_host, port + 1)
                    except OSError:
                        pass
                    else:
                        return sock
                rejected.append(sock)
            raise OSError("no even relayed port found")
        finally:
            for sock in rejected:
                sock.close()

    async def _run_relay(self, request: OpenRelay, scope: anyio.CancelScope) -> None:
        core = self.core
        allocation = request.allocation
        with scope:
            try:
                sock = await anyio.abc.UDPSocket.from_socket(self._bind_relay(request))
            except OSError:
                self.driver_counters.inc(TurnDriverCounter.RELAY_BIND_FAILED)
                self._relay_scopes.pop(allocation, None)
                core.relay_failed(allocation, now=self._loop.now())
                self._loop.poke()
                return
            send, receive = anyio.create_memory_object_stream[tuple[bytes, Address]](_QUEUE_SIZE)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._send_loop, sock, receive)
                    relayed = (self._relay_host, _port_of(sock))
                    self._relay_queues[allocation] = send
                    self._relay_addresses[allocation] = relayed
                    self.driver_counters.inc(TurnDriverCounter.RELAYS_OPENED)
                    core.relay_opened(allocation, relayed, now=self._loop.now())
                    self._loop.poke()
                    await self._relay_receive_loop(sock, allocation)
                    tg.cancel_scope.cancel()
            finally:
                send.close()
                with anyio.CancelScope(shield=True):
                    await sock.aclose()
                self.driver_counters.inc(TurnDriverCounter.RELAYS_CLOSED)

    async def _client_receive_loop(self, sock: anyio.abc.UDPSocket) -> None:
        core = self.core
        async for data, source in self._datagrams(sock):
            core.receive(data, source, now=self._loop.now())
            self._loop.poke()

    async def _relay_receive_loop(
        self, sock: anyio.abc.UDPSocket, allocation: AllocationId
    ) -> None:
        core = self.core
        async for data, source in self._datagrams(sock):
            core.receive_relayed(data, source, allocation, now=self._loop.now())
            self._loop.poke()

    def _datagrams(self, sock: anyio.abc.UDPSocket) -> AsyncIterator[tuple[bytes, Address]]:
        """(data, (host, port)) until the socket closes; receive errors counted and skipped."""
        return udp_datagrams(sock, on_error=self._count_receive_error)

    def _count_receive_error(self) -> None:
        self.driver_counters.inc(TurnDriverCounter.UDP_RECEIVE_ERROR)

    async def _send_loop(
        self, sock: anyio.abc.UDPSocket, queue: MemoryObjectReceiveStream[tuple[bytes, Address]]
    ) -> None:
        """Send what `queue` holds. Each wake-up sends everything queued by then (up to
        `_SEND_BURST`) straight from the socket, yielding only when the kernel's buffer is
        full: one datagram per turn let the listening socket's queue, fed by one receive
        task per allocation, grow N:1 and overflow under load."""
        # A second handle on the same non-blocking socket (asyncio's wrapper cannot send).
        raw = sock.extra(SocketAttribute.raw_socket).dup()
        raw.setblocking(False)
        with raw, queue:
            async for item in queue:
                for data, destination in _drain(queue, item):
                    try:
                        raw.sendto(data, destination)
                        continue
                    except BlockingIOError:
                        pass
                    except OSError:
                        self.driver_counters.inc(TurnDriverCounter.SENDTO_FAILED)
                        continue
                    try:
                        await sock.sendto(data, *destination)
                    except anyio.ClosedResourceError:
                        return
                    except (anyio.BrokenResourceError, OSError):
                        self.driver_counters.inc(TurnDriverCounter.SENDTO_FAILED)


def _drain(
    queue: MemoryObjectReceiveStream[tuple[bytes, Address]], first: tuple[bytes, Address]
) -> list[tuple[bytes, Address]]:
    """`first` and what else `queue` holds now, at most `_SEND_BURST` in all."""
    batch = [first]
    while len(batch) < _SEND_BURST:
        try:
            batch.append(queue.receive_nowait())
        except anyio.WouldBlock:
            break
    return batch


def _widen_receive_buffer(sock: socket.socket | asyncio.trsock.TransportSocket) -> None:
    """Ask for `_RECEIVE_BUFFER` bytes of kernel receive buffer (best effort)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)


def _udp_bind(host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket (IPv4 or IPv6, as `host` is) bound to (host, port)."""
    sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
        sock.setblocking(False)
        _widen_receive_buffer(sock)
    except OSError:
        sock.close()
        raise
    return sock


def _port_of(sock: anyio.abc.UDPSocket) -> int:
    address = sock.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)
    port = address[1]
    assert isinstance(port, int)
    return port


async def serve_turn(
    *,
    users: Mapping[str, str],
    realm: str = "railgun",
    host: str = "127.0.0.1",
    port: int = 0,
    task_status: anyio.abc.TaskStatus[TurnUdpServer] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve TURN until cancelled; ``server = await tg.start(serve_turn, ...)`` gives the handle."""
    server = TurnUdpServer(users=users, realm=realm, host=host, port=port)
    await server.run(task_status=task_status)


def run_turn(
    *, host: str, port: int, realm: str, users: Mapping[str, str], allow_public: bool = False
) -> int:
    """`railgun-ref turn`: serve until interrupted, printing the address and then the counters."""

    async def main() -> None:
        server = TurnUdpServer(
            users=users,
            realm=realm,
            host=host,
            port=port,
            relay_host=host,
            allow_public=allow_public,
        )
        async with anyio.create_task_group() as tg:
            try:
                await tg.start(server.run)
            except OSError as exc:
                raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            bound_host, bound_port = server.address
            print(f"turn: listening on udp://{bound_host}:{bound_port} realm={realm}", flush=True)
            try:
                await anyio.sleep_forever()
            finally:
                print(f"turn: counters {dict(sorted(server.counters.items()))}", flush=True)

    anyio.run(main)
    return 0
