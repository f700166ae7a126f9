"""A DNS-over-HTTPS endpoint (RFC 8484) on 127.0.0.0/8, answering from a `DnsServer`'s data.

The bootstrap race can resolve its DNS SRV source over DoH (BOOT-3.6), which
a censor cannot tell from other HTTPS traffic by port or payload. This
endpoint serves the same records and modes as the project's `DnsServer`
(whose `handle` it calls, bytes in and bytes out), over HTTP on loopback:

* ``POST /dns-query`` with a body of type ``application/dns-message``, and
  ``GET /dns-query?dns=<base64url, no padding>`` (RFC 8484 §4.1);
* the answer is ``200`` with the DNS message as ``application/dns-message``;
  a query that is not one is ``400``; a query the `DnsServer` drops (its
  ``silent`` mode) is held until the client gives up.

For tests of bad answers it can also be switched (`DohMode`) to answer
``403`` (a blocking middlebox), or ``200`` with bytes that are not a DNS
message. It speaks plain HTTP: on loopback TLS adds nothing to what is
tested (dnspython's DoH client is the same code for ``http://`` and
``https://`` URLs; point it at a real resolver's ``https://`` URL in use).
"""

import base64
import binascii
import socket
from contextlib import nullcontext
from enum import Enum, StrEnum
from typing import Any, Final

import anyio
import anyio.abc
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from railgun_ref.core.counters import Counters
from railgun_ref.drivers.addresses import check_bind_host
from railgun_ref.drivers.dns_server import DnsServer

__all__ = ["DNS_MESSAGE", "DohCounter", "DohMode", "DohServer"]

DNS_MESSAGE: Final = "application/dns-message"
#: RFC 8484 §6: a DNS message over HTTP is at most 65535 bytes.
MAX_MESSAGE: Final = 65535
#: How long a dropped ("silent") query is held before the connection is closed, seconds.
HOLD_SILENT: Final = 30.0


class DohMode(Enum):
    """What the endpoint does with a well-formed request."""

    ANSWER = "answer"  #: what the `DnsServer` answers
    FORBIDDEN = "forbidden"  #: HTTP 403, as a blocking middlebox would
    GARBAGE = "garbage"  #: HTTP 200 with bytes that are not a DNS message


class DohCounter(StrEnum):
    REQUESTS = "requests"  #: GET and POST to /dns-query
    BAD_REQUESTS = "bad_requests"  #: not an RFC 8484 request: 400
    ANSWERS = "answers"  #: label: the `DohMode` that produced the reply


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the task group decides when to stop."""

    def capture_signals(self) -> Any:
        return nullcontext()


class DohServer:
    """Run with ``url = await tg.start(doh.run)``; queries go to `dns`'s `handle`."""

    def __init__(self, dns: DnsServer, *, host: str = "127.0.0.1") -> None:
        check_bind_host(host)
        self.dns = dns
        self.mode = DohMode.ANSWER
        self.counters: Counters[DohCounter] = Counters()
        self._host = host
        self._url: str | None = None
        self._closing = anyio.Event()

    @property
    def url(self) -> str:
        """``http://HOST:PORT/dns-query``, once `run` has started."""
        if self._url is None:
            raise RuntimeError("the DoH endpoint is not listening yet: start run() first")
        return self._url

    async def _query_bytes(self, request: Request) -> bytes | None:
        if request.method == "GET":
            text = request.query_params.get("dns", "")
            try:
                return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            except (binascii.Error, ValueError):
                return None
        if request.headers.get("content-type", "").split(";")[0].strip() != DNS_MESSAGE:
            return None
        body = await request.body()
        return body if len(body) <= MAX_MESSAGE else None

    async def _endpoint(self, request: Request) -> Response:
        self.counters.inc(DohCounter.REQUESTS)
        query = await self._query_bytes(request)
        if not query:
            self.counters.inc(DohCounter.BAD_REQUESTS)
            return Response(b"not a DNS query", status_code=400)
        self.counters.inc(DohCounter.ANSWERS, label=self.mode)
        if self.mode is DohMode.FORBIDDEN:
            return Response(b"blocked", status_code=403)
        if self.mode is DohMode.GARBAGE:
            return Response(b"\x00\x01 this is not DNS", media_type=DNS_MESSAGE)
        reply = self.dns.handle(query)
        if reply is None:  # the DNS server's "silent" mode: the client times out
            with anyio.move_on_after(HOLD_SILENT):
                await self._closing.wait()
            return Response(b"", status_code=504)
        return Response(bytes(reply), media_type=DNS_MESSAGE)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/dns-query", self._endpoint, methods=["GET", "POST"])])

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[str] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; reports `url` once connections are accepted."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, 0))
        config = uvicorn.Config(self.app(), log_level="warning", access_log=False, lifespan="off")
        server = _QuietServer(config)
        done = anyio.Event()

        async def serve() -> None:
            try:
                with anyio.CancelScope(shield=True):  # uvicorn stops via should_exit
                    await server.serve(sockets=[sock])
            finally:
                done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(serve)
            try:
                with anyio.fail_after(10):
                    while not server.started and not done.is_set():
                        await anyio.sleep(0.01)
                if not server.started:
                    raise RuntimeError("the DoH endpoint did not start")
                self._url = f"http://{self._host}:{sock.getsockname()[1]}/dns-query"
                task_status.started(self._url)
                await anyio.sleep_forever()
            finally:
                self._closing.set()
                server.should_exit = True
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await done.wait()
                sock.close()
