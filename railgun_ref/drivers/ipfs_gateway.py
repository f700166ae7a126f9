"""A local IPFS-style trustless gateway on 127.0.0.0/8, for bootstrap tests and notebooks.

It is not IPFS: it serves byte strings it was given under their CID (CIDv1,
raw, SHA-256 — `bootstrap_sources.raw_cid`) at ``GET /ipfs/<cid>``, the
request a trustless gateway answers with the raw block. For the bad-input
cases it can be told to answer a CID with other bytes (`serve_wrong`), as a
compromised or censoring gateway would. HTTP/1.1 is spoken with h11; one
request per connection. Counters: `GatewayCounter`.
"""

from enum import StrEnum

import anyio
import anyio.abc
import h11

from railgun_ref.core.counters import Counters
from railgun_ref.core.ids import Address
from railgun_ref.drivers.addresses import check_bind_host
from railgun_ref.drivers.bootstrap_sources import raw_cid


class GatewayCounter(StrEnum):
    REQUESTS = "requests"
    SERVED = "served"
    NOT_FOUND = "not_found"
    BAD_REQUESTS = "bad_requests"


class IpfsGateway:
    """Run with ``await tg.start(gateway.run)``; `address` is known once started."""

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        check_bind_host(host)
        self._host = host
        self._address: Address | None = None
        self._blocks: dict[str, bytes] = {}
        self.counters: Counters[GatewayCounter] = Counters()

    @property
    def address(self) -> Address:
        if self._address is None:
            raise RuntimeError("the gateway is not listening yet: start run() first")
        return self._address

    def add(self, data: bytes) -> str:
        """Serve `data`; returns its CID."""
        cid_text = raw_cid(data)
        self._blocks[cid_text] = data
        return cid_text

    def serve_wrong(self, cid_text: str, data: bytes) -> None:
        """Answer `cid_text` with `data`, whatever its hash (a lying gateway)."""
        self._blocks[cid_text] = data

    def _answer(self, target: bytes) -> tuple[int, bytes]:
        path = target.decode("ascii", "replace").split("?", 1)[0]
        prefix = "/ipfs/"
        if not path.startswith(prefix) or path[len(prefix) :] not in self._blocks:
            self.counters.inc(GatewayCounter.NOT_FOUND)
            return 404, b"not found"
        self.counters.inc(GatewayCounter.SERVED)
        return 200, self._blocks[path[len(prefix) :]]

    async def _serve(self, stream: anyio.abc.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        async with stream:
            try:
                while (event := connection.next_event()) is h11.NEED_DATA:
                    connection.receive_data(await stream.receive())
            except (h11.RemoteProtocolError, anyio.EndOfStream, OSError):
                self.counters.inc(GatewayCounter.BAD_REQUESTS)
                return
            if not isinstance(event, h11.Request):
                self.counters.inc(GatewayCounter.BAD_REQUESTS)
                return
            self.counters.inc(GatewayCounter.REQUESTS)
            status, body = self._answer(event.target)
            headers = [("Content-Type", "application/vnd.ipld.raw")]
            headers += [("Content-Length", str(len(body))), ("Connection", "close")]
            response = h11.Response(status_code=status, headers=headers)
            data = connection.send(response) + connection.send(h11.Data(data=body))
            await stream.send(data + connection.send(h11.EndOfMessage()))

    async def run(
        self, *, task_status: anyio.abc.TaskStatus["IpfsGateway"] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, report `self` through `task_status`, serve until cancelled."""
        listener = await anyio.create_tcp_listener(local_host=self._host, local_port=0)
        async with listener:
            port = listener.extra(anyio.abc.SocketAttribute.local_port)
            self._address = (self._host, port)
            task_status.started(self)
            await listener.serve(self._serve)
