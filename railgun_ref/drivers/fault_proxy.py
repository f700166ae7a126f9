"""A fault-injecting TCP proxy in front of the central service (issue 6, scenarios 2 and 3).

`FaultProxy(upstream)` listens on 127.0.0.0/8 and relays every connection to
`upstream` byte for byte. Clients are given the proxy's address instead of
the service's, and the experiment switches the proxy's mode at run time to
stand for what a censor (or a takedown) does to the path:

* ``pass``      -- relay as is.
* ``blackhole`` -- an IP block that drops packets: bytes in both directions
  on open connections go nowhere, and new connections are accepted (the
  kernel completes the handshake) and then never answered. A health check
  ends in ``generic_timeout``.
* ``refuse``    -- nothing listens any more: the listening socket is closed,
  so a new connection is refused (``connection_refused``); open connections
  are reset, as when the service's process dies.
* ``reset``     -- a middlebox injecting RSTs: open connections are reset
  (SO_LINGER 0, then close), and each new one is accepted and reset at once
  (``connection_reset``).
* ``delay``     -- `delay` seconds are added to every chunk in each
  direction, so a request/response exchange gains twice that. Used for the
  2 s latency threshold of HT-2.2 (``high_latency``, classified by the detector).

Going back to ``pass`` re-opens the listener on the same port; a connection
that was blackholed stays so (its bytes are gone, as on a real network),
and a delayed chunk keeps the release time it was given.

Each direction of a relayed connection is a reader that stamps every chunk
with its release time and a writer that sends it then, so a delay adds
latency without limiting throughput, and order is kept. Time is the event
loop's (`anyio.current_time`), so the proxy also runs under trio's MockClock.

Counters (`counters`, named by `ProxyCounter`): ``accepted``, ``relayed``, ``upstream_failed``,
``reset``, ``blackholed_connections``, ``bytes.up`` / ``bytes.down``
(relayed), ``bytes.blackholed``, ``listener.closed`` / ``listener.opened``.
"""

import math
import socket
import struct
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Final

import anyio
import anyio.abc
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import Address
from railgun_ref.drivers.addresses import check_bind_host, check_destination

#: Bytes read from a socket at a time.
_CHUNK: Final = 65536
#: Chunks waiting for their release time per direction before the reader waits.
_QUEUE: Final = 256
#: SO_LINGER with a zero timeout: close() sends RST instead of FIN.
_LINGER_RST: Final = struct.pack("ii", 1, 0)


class ProxyMode(Enum):
    """What the proxy does to connections (see the module docstring)."""

    PASS = "pass"
    BLACKHOLE = "blackhole"
    REFUSE = "refuse"
    RESET = "reset"
    DELAY = "delay"


class ProxyCounter(StrEnum):
    """What `FaultProxy.counters` counts."""

    ACCEPTED = "accepted"  #: connections accepted from clients
    RELAYED = "relayed"  #: connections relayed to the upstream
    UPSTREAM_FAILED = "upstream_failed"  #: the upstream refused: the client was reset
    RESET = "reset"  #: client connections reset by the proxy
    BLACKHOLED_CONNECTIONS = "blackholed_connections"  #: accepted in BLACKHOLE mode
    BYTES = "bytes"  #: label: `ByteFate`
    LISTENER = "listener"  #: label: `ListenerEvent`


class ByteFate(StrEnum):
    """Label of ``bytes``: relayed up (client to service), down, or dropped."""

    UP = "up"
    DOWN = "down"
    BLACKHOLED = "blackholed"


class ListenerEvent(StrEnum):
    """Label of ``listener``: the listening socket opened or closed."""

    OPENED = "opened"
    CLOSED = "closed"


@dataclass(slots=True, eq=False)
class _Connection:
    client: SocketStream
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    upstream: SocketStream | None = None


def _arm_reset(stream: SocketStream) -> None:
    """Make the next close of `stream` send RST (SO_LINGER 0)."""
    try:
        raw = stream.extra(SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass  # already closed by the peer: nothing left to reset


class FaultProxy:
    """A TCP proxy with run-time faults. Run it with ``await tg.start(proxy.run)``."""

    def __init__(self, upstream: Address, *, host: str = "127.0.0.1", port: int = 0) -> None:
        check_destination(upstream)
        check_bind_host(host)
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"port must be 0..65535, got {port}")
        self.upstream = upstream
        self._host = host
        self._port = port
        self.mode = ProxyMode.PASS
        self.delay = 0.0  #: seconds added per direction in DELAY mode
        self.counters: Counters[ProxyCounter] = Counters()
        self._connections: set[_Connection] = set()
        self._accept_scope: anyio.CancelScope | None = None
        self._changed = anyio.Event()
        self._started = False

    @property
    def address(self) -> Address:
        if not self._port:
            raise RuntimeError("the proxy is not bound yet: start run() first")
        return (self._host, self._port)

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the proxy, to give clients instead of the service's URL."""
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    # ------------------------------------------------------------ control

    def set_mode(self, mode: ProxyMode, *, delay: float = 0.0) -> None:
        """Switch the fault; `delay` (seconds, per direction) only for `ProxyMode.DELAY`."""
        if mode is ProxyMode.DELAY:
            if not (delay >= 0 and math.isfinite(delay)):
                raise ValueError("delay must be a finite number of seconds >= 0")
            self.delay = delay
        elif delay:
            raise ValueError("a delay is given only with ProxyMode.DELAY")
        self.mode = mode
        if mode in (ProxyMode.REFUSE, ProxyMode.RESET):
            for connection in list(self._connections):
                self._reset(connection)
        if mode is ProxyMode.REFUSE and self._accept_scope is not None:
            self._accept_scope.cancel()
        self._changed.set()
        self._changed = anyio.Event()

    def set_delay_ms(self, milliseconds: float) -> None:
        """``delay(ms)``: the configured latency threshold is in milliseconds."""
        self.set_mode(ProxyMode.DELAY, delay=milliseconds / 1000)

    # ------------------------------------------------------------ IO

    async def run(
        self, *, task_status: anyio.abc.TaskStatus["FaultProxy"] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, report `self` through `task_status`, serve until cancelled."""
        if self._started:
            raise RuntimeError("a FaultProxy runs only once; make a new one")
        self._started = True
        listener: anyio.abc.Listener[SocketStream] | None = await self._listen()
        async with anyio.create_task_group() as tg:
            task_status.started(self)
            while True:
                if listener is not None:
                    with anyio.CancelScope() as scope:
                        self._accept_scope = scope
                        if self.mode is not ProxyMode.REFUSE:
                            await listener.serve(self._handle, task_group=tg)
                    self._accept_scope = None
                    await listener.aclose()
                    listener = None
                    self.counters.inc(ProxyCounter.LISTENER, label=ListenerEvent.CLOSED)
                while self.mode is ProxyMode.REFUSE:
                    await self._changed.wait()
                listener = await self._listen()

    async def _listen(self) -> anyio.abc.Listener[SocketStream]:
        multi = await anyio.create_tcp_listener(
            local_host=self._host, local_port=self._port, family=socket.AF_INET
        )
        listener = multi.listeners[0]
        self._port = int(listener.extra(SocketAttribute.local_port))
        self.counters.inc(ProxyCounter.LISTENER, label=ListenerEvent.OPENED)
        return listener

    def _reset(self, connection: _Connection) -> None:
        _arm_reset(connection.client)
        self.counters.inc(ProxyCounter.RESET)
        connection.scope.cancel()

    async def _handle(self, client: SocketStream) -> None:
        connection = _Connection(client)
        self._connections.add(connection)
        self.counters.inc(ProxyCounter.ACCEPTED)
        try:
            with connection.scope:
                if self.mode in (ProxyMode.RESET, ProxyMode.REFUSE):
                    self._reset(connection)
                    return
                if self.mode is ProxyMode.BLACKHOLE:
                    self.counters.inc(ProxyCounter.BLACKHOLED_CONNECTIONS)
                    await self._swallow(client)
                    return
                try:
                    connection.upstream = await anyio.connect_tcp(*self.upstream)
                except OSError:
                    # The service is gone: the client sees its connection reset.
                    self.counters.inc(ProxyCounter.UPSTREAM_FAILED)
                    self._reset(connection)
                    return
                self.counters.inc(ProxyCounter.RELAYED)
                async with anyio.create_task_group() as tg:
                    for source, sink, direction in (
                        (client, connection.upstream, ByteFate.UP),
                        (connection.upstream, client, ByteFate.DOWN),
                    ):
                        send, receive = anyio.create_memory_object_stream[
                            tuple[float, bytes] | None
                        ](_QUEUE)
                        tg.start_soon(self._read, source, send, direction)
                        tg.start_soon(self._write, receive, sink, connection.scope)
        finally:
            self._connections.discard(connection)
            with anyio.CancelScope(shield=True):
                if connection.upstream is not None:
                    await connection.upstream.aclose()
                await client.aclose()

    async def _swallow(self, stream: SocketStream) -> None:
        """Read and drop everything (a blackholed connection) until the peer gives up.

        The peer's close ends it; closing our side then tells a peer that is
        already gone nothing, so silence is kept.
        """
        while True:
            try:
                data = await stream.receive(_CHUNK)
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return
            self.counters.inc(ProxyCounter.BYTES, len(data), label=ByteFate.BLACKHOLED)

    async def _read(
        self,
        source: SocketStream,
        queue: MemoryObjectSendStream[tuple[float, bytes] | None],
        direction: ByteFate,
    ) -> None:
        """Stamp each chunk with its release time; None marks end of stream."""
        async with queue:
            while True:
                try:
                    data = await source.receive(_CHUNK)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    await queue.send(None)
                    return
                if self.mode is ProxyMode.BLACKHOLE:
                    self.counters.inc(ProxyCounter.BYTES, len(data), label=ByteFate.BLACKHOLED)
                    continue
                self.counters.inc(ProxyCounter.BYTES, len(data), label=direction)
                extra = self.delay if self.mode is ProxyMode.DELAY else 0.0
                await queue.send((anyio.current_time() + extra, data))

    async def _write(
        self,
        queue: MemoryObjectReceiveStream[tuple[float, bytes] | None],
        sink: SocketStream,
        scope: anyio.CancelScope,
    ) -> None:
        """Send each chunk at its release time; pass end of stream on as a half-close."""
        async with queue:
            async for item in queue:
                try:
                    if item is None:
                        await sink.send_eof()
                        return
                    release, data = item
                    wait = release - anyio.current_time()
                    if wait > 0:
                        await anyio.sleep(wait)
                    if self.mode is ProxyMode.BLACKHOLE:
                        self.counters.inc(ProxyCounter.BYTES, len(data), label=ByteFate.BLACKHOLED)
                        continue
                    await sink.send(data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    scope.cancel()  # one side is gone: end the whole connection
                    return
