"""The peer-hosted TURN server on real UDP sockets (anyio), around `railgun_ref.relay.turn`.

One listening socket on a 127.0.0.0/8 host takes what clients send; each
allocation gets its own relayed UDP socket on an ephemeral port of
``relay_host`` (127.0.0.1 by default), opened when the core asks for it
(`OpenRelay`) and closed when the core lets the allocation go (`CloseRelay`:
Refresh with LIFETIME 0, or expiry). Every socket has one receiving task and
one sending task fed by a bounded queue, since anyio forbids concurrent sends
on a socket. A timer task sleeps until the core's `next_deadline` and runs
`on_timer`, so allocations expire even when nothing arrives.

Time is the event loop's clock (`anyio.current_time`), so the server also
runs under trio's MockClock. Randomness (the nonce secret, Data indication
transaction ids) comes from ``random_bytes``, `os.urandom` unless injected.

Whatever arrives -- garbage, datagrams for expired allocations, replies to
non-loopback addresses the core would produce, full queues, receive errors --
is counted in ``counters`` (``turn.*`` from the core, ``driver.*`` from here)
and the server goes on. Like every driver here it binds and sends only within
127.0.0.0/8.
"""

import math
import os
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Final

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from railgun_ref.capacity.nat import NatType
from railgun_ref.capacity.sharing import DEFAULT_SHARING, CapacitySharing, CapacitySharingConfig
from railgun_ref.capacity.types import Availability, DeviceCapabilities, DeviceClass
from railgun_ref.core.ids import Address
from railgun_ref.drivers.addresses import check_loopback_address, check_loopback_host
from railgun_ref.drivers.udp_receive import udp_datagrams
from railgun_ref.relay.turn import (
    AllocationId,
    AllocationInfo,
    CloseRelay,
    OpenRelay,
    SendToClient,
    SendToPeer,
    TurnAction,
    TurnConfig,
    TurnServer,
)

#: Datagrams waiting per socket before new ones are dropped (and counted).
_QUEUE_SIZE: Final = 512
#: Relay peers may only be on loopback: the core answers 403 for anything else.
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


class TurnUdpServer:
    """A TURN server on 127.0.0.0/8. Run it with ``server = await tg.start(turn.run)``.

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
    ) -> None:
        check_loopback_host(host)
        check_loopback_host(relay_host)
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"port must be 0..65535, got {port}")
        self._config = config or TurnConfig(realm=realm, allowed_peers=LOOPBACK_PEERS)
        self._users = dict(users)
        self._host = host
        self._port = port
        self._relay_host = relay_host
        self._sharing = sharing
        self._capabilities = capabilities
        self._sharing_config = sharing_config
        self._random_bytes = random_bytes
        self._core: TurnServer | None = None
        self._address: Address | None = None
        self._client_queue: _Queue | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._relay_scopes: dict[AllocationId, anyio.CancelScope] = {}
        self._relay_queues: dict[AllocationId, _Queue] = {}
        self._relay_addresses: dict[AllocationId, Address] = {}
        self._wake: anyio.Event | None = None  # made in run(): an Event needs the event loop
        self._driver_counters: Counter[str] = Counter()

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
    def counters(self) -> Counter[str]:
        """``turn.*`` counts of the protocol core plus the driver's own ``driver.*``."""
        merged = Counter(self._core.counters if self._core is not None else {})
        merged.update(self._driver_counters)
        return merged

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
        self._core = TurnServer(
            self._config, users=self._users, sharing=sharing, random_bytes=self._random_bytes
        )
        sock = await anyio.create_udp_socket(
            family=socket.AF_INET, local_host=self._host, local_port=self._port
        )
        self._address = (self._host, _port_of(sock))
        send, receive = anyio.create_memory_object_stream[tuple[bytes, Address]](_QUEUE_SIZE)
        self._client_queue = send
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                tg.start_soon(self._send_loop, sock, receive)
                tg.start_soon(self._client_receive_loop, sock)
                tg.start_soon(self._timer_loop)
                task_status.started(self)
        finally:
            send.close()
            await sock.aclose()

    # ---------------------------------------------------------- internals

    def _execute(self, actions: list[TurnAction]) -> None:
        """Carry out what the core asked for; never blocks."""
        for action in actions:
            match action:
                case SendToClient(client=client, data=data):
                    self._enqueue(self._client_queue, data, client)
                case SendToPeer(allocation=allocation, peer=peer, data=data):
                    queue = self._relay_queues.get(allocation)
                    if queue is None:
                        self._driver_counters["driver.relay_not_open"] += 1
                    else:
                        self._enqueue(queue, data, peer)
                case OpenRelay(allocation=allocation):
                    scope = anyio.CancelScope()
                    self._relay_scopes[allocation] = scope
                    assert self._task_group is not None
                    self._task_group.start_soon(self._run_relay, allocation, scope)
                case CloseRelay(allocation=allocation):
                    closing = self._relay_scopes.pop(allocation, None)
                    if closing is not None:
                        closing.cancel()
                    queue = self._relay_queues.pop(allocation, None)
                    if queue is not None:
                        queue.close()
                    self._relay_addresses.pop(allocation, None)
        if self._wake is not None:
            self._wake.set()

    def _enqueue(self, queue: _Queue | None, data: bytes, destination: Address) -> None:
        try:
            check_loopback_address(destination)
        except ValueError:
            self._driver_counters["driver.refused_address"] += 1
            return
        if queue is None:
            return
        try:
            queue.send_nowait((data, destination))
        except anyio.WouldBlock:
            self._driver_counters["driver.send_queue_full"] += 1
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._driver_counters["driver.send_queue_closed"] += 1

    async def _run_relay(self, allocation: AllocationId, scope: anyio.CancelScope) -> None:
        core = self.core
        with scope:
            try:
                sock = await anyio.create_udp_socket(
                    family=socket.AF_INET, local_host=self._relay_host, local_port=0
                )
            except OSError:
                self._driver_counters["driver.relay_bind_failed"] += 1
                self._relay_scopes.pop(allocation, None)
                self._execute(core.relay_failed(allocation, now=anyio.current_time()))
                return
            send, receive = anyio.create_memory_object_stream[tuple[bytes, Address]](_QUEUE_SIZE)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._send_loop, sock, receive)
                    relayed = (self._relay_host, _port_of(sock))
                    self._relay_queues[allocation] = send
                    self._relay_addresses[allocation] = relayed
                    self._driver_counters["driver.relays_opened"] += 1
                    self._execute(core.relay_opened(allocation, relayed, now=anyio.current_time()))
                    await self._relay_receive_loop(sock, allocation)
                    tg.cancel_scope.cancel()
            finally:
                send.close()
                with anyio.CancelScope(shield=True):
                    await sock.aclose()
                self._driver_counters["driver.relays_closed"] += 1

    async def _client_receive_loop(self, sock: anyio.abc.UDPSocket) -> None:
        core = self.core
        async for data, source in self._datagrams(sock):
            self._execute(core.receive(data, source, now=anyio.current_time()))

    async def _relay_receive_loop(
        self, sock: anyio.abc.UDPSocket, allocation: AllocationId
    ) -> None:
        core = self.core
        async for data, source in self._datagrams(sock):
            self._execute(core.receive_relayed(data, source, allocation, now=anyio.current_time()))

    def _datagrams(self, sock: anyio.abc.UDPSocket) -> AsyncIterator[tuple[bytes, Address]]:
        """(data, (host, port)) until the socket closes; receive errors counted and skipped."""
        return udp_datagrams(sock, on_error=self._count_receive_error)

    def _count_receive_error(self) -> None:
        self._driver_counters["driver.udp_receive_error"] += 1

    async def _send_loop(
        self, sock: anyio.abc.UDPSocket, queue: MemoryObjectReceiveStream[tuple[bytes, Address]]
    ) -> None:
        async with queue:
            async for data, (host, port) in queue:
                try:
                    await sock.sendto(data, host, port)
                except anyio.ClosedResourceError:
                    return
                except (anyio.BrokenResourceError, OSError):
                    self._driver_counters["driver.sendto_failed"] += 1

    async def _timer_loop(self) -> None:
        core = self.core
        while True:
            self._wake = anyio.Event()
            deadline = core.next_deadline()
            delay = math.inf if deadline is None else max(0.0, deadline - anyio.current_time())
            with anyio.move_on_after(delay):
                await self._wake.wait()
            if deadline is not None and anyio.current_time() >= deadline:
                self._execute(core.on_timer(now=anyio.current_time()))


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


def run_turn(*, host: str, port: int, realm: str, users: Mapping[str, str]) -> int:
    """`railgun-ref turn`: serve until interrupted, printing the address and then the counters."""

    async def main() -> None:
        server = TurnUdpServer(users=users, realm=realm, host=host, port=port)
        async with anyio.create_task_group() as tg:
            await tg.start(server.run)
            bound_host, bound_port = server.address
            print(f"turn: listening on udp://{bound_host}:{bound_port} realm={realm}", flush=True)
            try:
                await anyio.sleep_forever()
            finally:
                print(f"turn: counters {dict(sorted(server.counters.items()))}", flush=True)

    anyio.run(main)
    return 0
