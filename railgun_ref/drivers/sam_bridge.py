"""A local SAM v3 endpoint on 127.0.0.0/8 for I2P bootstrap tests and notebooks — not an I2P router.

It speaks the client-facing part of the SAM v3 protocol (SAM specification
3.1–3.3) that `drivers.bootstrap_proxies.i2p_ping` uses: ``HELLO VERSION``,
``SESSION CREATE STYLE=STREAM`` (transient destinations only), ``NAMING
LOOKUP`` and ``STREAM CONNECT``, after which the connection relays bytes to a
local TCP port. Names are mapped with `route` (a ``.b32.i2p`` name to a local
port); a name it does not know gets ``RESULT=KEY_NOT_FOUND``, a destination it
cannot reach ``RESULT=CANT_REACH_PEER``. Nothing is anonymous: there are no
tunnels, and the "destinations" are made-up base64 strings.
"""

import base64
import hashlib
from enum import StrEnum

import anyio
import anyio.abc

from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import Address
from railgun_ref.drivers.addresses import check_bind_host
from railgun_ref.drivers.bootstrap_proxies import sam_reply


class SamCounter(StrEnum):
    CONNECTIONS = "connections"
    SESSIONS = "sessions"
    LOOKUPS = "lookups"
    STREAMS = "streams"
    REFUSED = "refused"


def fake_destination(name: str) -> str:
    """A stand-in for the base64 destination of `name` (stable, unique per name)."""
    return base64.b64encode(hashlib.sha256(name.encode()).digest() * 12).decode("ascii")


class SamBridgeServer:
    """Run with ``await tg.start(bridge.run)``; `address` is known once started."""

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        check_bind_host(host)
        self._host = host
        self._address: Address | None = None
        self._ports: dict[str, int] = {}  #: destination -> local TCP port
        self._names: dict[str, str] = {}  #: name -> destination
        self._sessions: set[str] = set()
        self.counters: Counters[SamCounter] = Counters()

    @property
    def address(self) -> Address:
        if self._address is None:
            raise RuntimeError("the SAM bridge is not listening yet: start run() first")
        return self._address

    def route(self, name: str, port: int) -> None:
        """Let `name` (``xxx.b32.i2p``) resolve, and its streams reach 127.0.0.1:`port`."""
        destination = fake_destination(name)
        self._names[name] = destination
        self._ports[destination] = port

    def _answer(self, line: bytes) -> tuple[bytes, int | None]:
        """The reply to one command, and the port to relay to after a good STREAM CONNECT."""
        request = sam_reply(line)
        command = request["_command"]
        if command == "HELLO VERSION":
            return b"HELLO REPLY RESULT=OK VERSION=3.3\n", None
        if command == "SESSION CREATE" and request.get("STYLE") == "STREAM":
            self._sessions.add(request.get("ID", ""))
            self.counters.inc(SamCounter.SESSIONS)
            destination = fake_destination(request.get("ID", ""))
            return f"SESSION STATUS RESULT=OK DESTINATION={destination}\n".encode(), None
        if command == "NAMING LOOKUP":
            self.counters.inc(SamCounter.LOOKUPS)
            name = request.get("NAME", "")
            if name not in self._names:
                return f"NAMING REPLY RESULT=KEY_NOT_FOUND NAME={name}\n".encode(), None
            return f"NAMING REPLY RESULT=OK NAME={name} VALUE={self._names[name]}\n".encode(), None
        if command == "STREAM CONNECT":
            if request.get("ID") not in self._sessions:
                return b"STREAM STATUS RESULT=INVALID_ID\n", None
            port = self._ports.get(request.get("DESTINATION", ""))
            if port is None:
                return b"STREAM STATUS RESULT=CANT_REACH_PEER\n", None
            return b"STREAM STATUS RESULT=OK\n", port
        self.counters.inc(SamCounter.REFUSED)
        return b'STATUS RESULT=I2P_ERROR MESSAGE="unsupported"\n', None

    async def _serve(self, client: anyio.abc.SocketStream) -> None:
        self.counters.inc(SamCounter.CONNECTIONS)
        buffer = b""
        async with client:
            while True:
                try:
                    while b"\n" not in buffer:
                        buffer += await client.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    return
                line, _, buffer = buffer.partition(b"\n")
                reply, port = self._answer(line)
                await client.send(reply)
                if port is not None:
                    self.counters.inc(SamCounter.STREAMS)
                    await _relay(client, port, buffer)
                    return

    async def run(
        self, *, task_status: anyio.abc.TaskStatus["SamBridgeServer"] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        listener = await anyio.create_tcp_listener(local_host=self._host, local_port=0)
        async with listener:
            self._address = (self._host, listener.extra(anyio.abc.SocketAttribute.local_port))
            task_status.started(self)
            await listener.serve(self._serve)


async def _relay(client: anyio.abc.SocketStream, port: int, pending: bytes) -> None:
    """Copy bytes both ways between `client` and 127.0.0.1:`port` until either side closes."""
    try:
        upstream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return
    async with upstream, anyio.create_task_group() as tg:

        async def copy(source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream) -> None:
            try:
                async for chunk in source:
                    await sink.send(chunk)
            except (anyio.BrokenResourceError, OSError):
                pass
            tg.cancel_scope.cancel()

        if pending:
            await upstream.send(pending)
        tg.start_soon(copy, client, upstream)
        tg.start_soon(copy, upstream, client)
