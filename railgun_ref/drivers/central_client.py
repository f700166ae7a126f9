"""Client of the central service: WebSocket session and HTTP health check (CEN-x, HT-2.1).

`connect_central` opens a WebSocket to a central service, answers its
CHALLENGE with an AUTH signed by the node's identity (CEN-3.2), and yields a
`CentralClient` that can `join`, `leave`, `send`, `receive` and `ack`. One
reader task per client decodes every frame the server sends: replies complete
the request with the same request id, DELIVER frames go to `receive()`. A
server that sends anything that does not decode, or a reply nobody asked for,
is *garbage*: the client closes the connection (code 1002) and every pending
and later call raises that `RemoteProtocolError`.

Delivery is at-least-once until ACK: the service pushes a mailbox entry again
on the next connection if it was not ACKed. The client drops a DELIVER whose
mailbox seq it has already handed out with `receive()` (pass the same
`seen_seqs` set to the next `connect_central` to keep that guarantee across
reconnects), so the application sees each entry once. A seq counts as handed
out only when `receive()` returns it, not when its frame is read off the
socket: deliveries still buffered when a session ends were never handed
over, so their re-push on the next session is delivered, not dropped (HT-4.3).
An entry dropped as a duplicate is not ACKed by this client; a caller that
may have lost an ACK to a session's end (HybridTransport) keeps no
`seen_seqs` across sessions and deduplicates by message id instead, ACKing
every re-pushed entry. SEND is idempotent by message id, so a send
that timed out or was cut by a failover can be retried, on this service or
after reconnecting, without creating a duplicate (CEN-4.3).

`check_health` is the health check of HT-2.1: one HTTP GET of ``/health``,
its failure mapped to a `FailureLabel`.

This client runs on asyncio (the `websockets` library); anyio is used for
timeouts, tasks and streams, so callers can stay backend-neutral in style.
"""

import ipaddress
import json
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableSet, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import ClassVar, Final, NoReturn
from urllib.parse import urlsplit

import anyio
import h11
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.core.ids import NodeId
from railgun_ref.drivers.addresses import check_destination_host
from railgun_ref.identity.keys import Identity, RandomBytes
from railgun_ref.transport.health import FailureLabel, HealthResult
from railgun_ref.wire.central import (
    MAX_FRAME_SIZE,
    MAX_TTL,
    MESSAGE_ID_SIZE,
    Ack,
    Acked,
    Auth,
    CentralErrorCode,
    Challenge,
    ClientFrame,
    Deliver,
    ErrorFrame,
    Join,
    Joined,
    Leave,
    Left,
    Send,
    Sent,
    ServerFrame,
    Welcome,
    auth_message,
    decode_server_frame,
    encode_frame,
)

#: The default store-and-forward TTL (HT-5.1: 7 days), seconds.
DEFAULT_TTL: Final = MAX_TTL
#: The WebSocket endpoint's path on the service (CEN-1.1).
WEBSOCKET_PATH: Final = "/ws"
#: The health endpoint's path (CEN-1.2).
HEALTH_PATH: Final = "/health"
#: A health answer larger than this is not a health answer (bytes).
MAX_HEALTH_BODY: Final = 16384
_PROTOCOL_ERROR_CLOSE: Final = 1002


class CentralError(Exception):
    """The central service refused a request with an ERROR frame (CEN-6.1)."""

    def __init__(self, code: int, reason: str, *, retry_after: float = 0.0) -> None:
        self.code = code
        self.reason = reason
        self.retry_after = retry_after  #: seconds, for RATE_LIMITED
        super().__init__(f"{self.name} ({code}): {reason}")

    @property
    def name(self) -> str:
        """The code's name (CEN-6.2), or the number if this client does not know it."""
        try:
            return CentralErrorCode(self.code).name
        except ValueError:
            return str(self.code)


class CentralClosedError(ConnectionError):
    """The connection to the central service is closed; `error` is the ERROR that closed it."""

    def __init__(self, message: str, *, error: CentralError | None = None) -> None:
        super().__init__(message if error is None else f"{message}: {error}")
        self.error = error


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One mailbox entry pushed by the service (CEN-4.5). ACK `seq` once it is processed."""

    room_id: bytes
    message_id: bytes
    timestamp_ms: int  #: the service's time of the SEND
    ttl: int  #: seconds from `timestamp_ms`
    blob: bytes  #: the sender's E2EE blob (`open_room_message` opens it)
    seq: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SendReceipt:
    """The service committed the envelope (CEN-4.4)."""

    message_id: bytes
    timestamp_ms: int  #: the service's time of the first SEND with this message id


@dataclass(slots=True, eq=False)
class _Call:
    expect: type[ServerFrame]
    done: anyio.Event = field(default_factory=anyio.Event)
    reply: ServerFrame | None = None
    failure: BaseException | None = None


def websocket_url(url: str) -> str:
    """The WebSocket URL of a service given as ``http://HOST:PORT`` (or already ``ws://...``)."""
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        return url
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"expected an http:// or ws:// URL, got {url!r}")
    scheme = "ws" if parts.scheme == "http" else "wss"
    return f"{scheme}://{parts.netloc}{WEBSOCKET_PATH}"


def origin_of(ws_url: str) -> str:
    """CEN-3.2: the origin a client signs: ``SCHEME://HOST:PORT`` of the URL it dialled."""
    parts = urlsplit(ws_url)
    if parts.hostname is None:
        raise ValueError(f"no host in {ws_url!r}")
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _garbage(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.UNEXPECTED_RESPONSE, reason)


class CentralClient:
    """An authenticated session with a central service. Make one with `connect_central`."""

    def __init__(
        self,
        websocket: ClientConnection,
        identity: Identity,
        *,
        timeout: float,
        seen_seqs: MutableSet[int],
        random_bytes: RandomBytes,
    ) -> None:
        self.identity = identity
        self.timeout = timeout
        self.rooms: frozenset[bytes] = frozenset()  #: memberships the service reported at AUTH
        self.server_time_ms = 0  #: the service's clock at AUTH
        self.duplicates_dropped = 0  #: DELIVERs of a seq already handed out (or buffered)
        self._ws = websocket
        self._seen = seen_seqs  #: seqs `receive()` has handed out
        self._buffered: set[int] = set()  #: seqs read off the socket, not yet handed out
        self._random_bytes = random_bytes
        self._next_req = 1
        self._calls: dict[int, _Call] = {}
        self._abandoned: set[int] = set()
        self._failure: BaseException | None = None
        self._last_error: CentralError | None = None
        self._deliveries_in: MemoryObjectSendStream[Delivery]
        self._deliveries: MemoryObjectReceiveStream[Delivery]
        self._deliveries_in, self._deliveries = anyio.create_memory_object_stream[Delivery](
            math.inf
        )

    @property
    def node_id(self) -> NodeId:
        return self.identity.node_id

    @property
    def buffered(self) -> int:
        """Deliveries read off the socket that `receive()` has not handed out yet."""
        return len(self._buffered)

    # ------------------------------------------------------------ handshake

    async def _recv_frame(self) -> tuple[int, ServerFrame]:
        raw = await self._ws.recv()
        if not isinstance(raw, bytes):
            raise RemoteProtocolError(ErrorCode.MALFORMED, "the service sent a text frame")
        return decode_server_frame(raw)

    async def _handshake(self, origin: str) -> None:
        """CEN-3.x: CHALLENGE -> AUTH -> WELCOME (or ERROR, raised as CentralError)."""
        _, challenge = await self._recv_frame()
        if isinstance(challenge, ErrorFrame):
            raise CentralError(challenge.code, challenge.reason)
        if not isinstance(challenge, Challenge):
            raise _garbage(f"expected CHALLENGE, got {challenge.TYPE.name}")
        signature = self.identity.sign(auth_message(challenge.nonce, origin))
        auth = Auth(nonce=challenge.nonce, public_key=self.identity.public_key, signature=signature)
        req = self._take_req()
        await self._ws.send(encode_frame(auth, req=req))
        got_req, welcome = await self._recv_frame()
        if isinstance(welcome, ErrorFrame):
            raise CentralError(welcome.code, welcome.reason)
        if not isinstance(welcome, Welcome) or got_req != req:
            raise _garbage(f"expected WELCOME to request {req}, got {welcome.TYPE.name}")
        if welcome.node_id != self.identity.node_id:
            raise RemoteProtocolError(ErrorCode.WRONG_SENDER, "WELCOME names another node id")
        self.rooms = frozenset(welcome.rooms)
        self.server_time_ms = welcome.server_time_ms

    # ------------------------------------------------------------ reader

    async def _read_loop(self) -> None:
        failure: BaseException
        try:
            async for raw in self._ws:
                if not isinstance(raw, bytes):
                    raise RemoteProtocolError(ErrorCode.MALFORMED, "the service sent a text frame")
                await self._dispatch(*decode_server_frame(raw))
            failure = self._closed_error()
        except ConnectionClosed:
            failure = self._closed_error()
        except RemoteProtocolError as exc:
            failure = exc
            with anyio.move_on_after(2, shield=True):
                await self._ws.close(_PROTOCOL_ERROR_CLOSE, exc.message[:120])
        self._fail(failure)

    def _closed_error(self) -> CentralClosedError:
        close = self._ws.close_code
        reason = self._ws.close_reason or ""
        return CentralClosedError(
            f"connection closed by the service (code {close} {reason})".rstrip(),
            error=self._last_error,
        )

    async def _dispatch(self, req: int, frame: ServerFrame) -> None:
        if isinstance(frame, Deliver):
            if req != 0:
                raise _garbage("DELIVER must carry request id 0")
            if frame.seq in self._seen or frame.seq in self._buffered:
                self.duplicates_dropped += 1
                return
            self._buffered.add(frame.seq)  # seen only once `receive()` hands it out (HT-4.3)
            await self._deliveries_in.send(
                Delivery(
                    room_id=frame.room_id,
                    message_id=frame.message_id,
                    timestamp_ms=frame.timestamp_ms,
                    ttl=frame.ttl,
                    blob=frame.blob,
                    seq=frame.seq,
                )
            )
            return
        if isinstance(frame, ErrorFrame) and req == 0:
            # An ERROR that answers no request: the service is about to close (CEN-6.3).
            self._last_error = CentralError(frame.code, frame.reason)
            return
        call = self._calls.get(req)
        if call is None:
            if req in self._abandoned:  # the caller timed out; the answer came late
                self._abandoned.discard(req)
                return
            raise _garbage(f"{frame.TYPE.name} answers no request in flight (id {req})")
        if not isinstance(frame, call.expect | ErrorFrame):
            raise _garbage(f"expected {call.expect.TYPE.name}, got {frame.TYPE.name}")
        call.reply = frame
        call.done.set()

    def _fail(self, failure: BaseException) -> None:
        if self._failure is None:
            self._failure = failure
        for call in self._calls.values():
            call.failure = failure
            call.done.set()
        self._deliveries_in.close()

    # ------------------------------------------------------------ requests

    def _take_req(self) -> int:
        req = self._next_req
        self._next_req += 1
        return req

    async def _request(self, frame: ClientFrame, expect: type[ServerFrame]) -> ServerFrame:
        if self._failure is not None:
            raise self._failure
        req = self._take_req()
        call = _Call(expect=expect)
        self._calls[req] = call
        try:
            try:
                await self._ws.send(encode_frame(frame, req=req))
            except ConnectionClosed:
                raise self._closed_error() from None
            with anyio.fail_after(self.timeout):
                await call.done.wait()
        except BaseException:
            if not call.done.is_set():
                self._abandoned.add(req)
            raise
        finally:
            del self._calls[req]
        if call.failure is not None:
            raise call.failure
        reply = call.reply
        if isinstance(reply, ErrorFrame):
            raise CentralError(reply.code, reply.reason, retry_after=reply.retry_after_ms / 1000)
        assert reply is not None
        return reply

    async def _abort(self, failure: RemoteProtocolError) -> NoReturn:
        """The service answered with something inconsistent: close and fail everything."""
        self._fail(failure)
        with anyio.move_on_after(2, shield=True):
            await self._ws.close(_PROTOCOL_ERROR_CLOSE, failure.message[:120])
        raise failure

    async def join(self, room_id: bytes, changes: Sequence[bytes]) -> None:
        """CEN-4.1, ROOM-6.3: become a member of `room_id`, proven by its log `changes`.

        Joining again with a longer log tells the service of later changes.
        """
        reply = await self._request(Join(room_id=room_id, changes=tuple(changes)), Joined)
        if not isinstance(reply, Joined) or reply.room_id != room_id:
            await self._abort(_garbage("JOINED names another room"))

    async def leave(self, room_id: bytes) -> None:
        """CEN-4.2: stop being a member of `room_id`."""
        reply = await self._request(Leave(room_id=room_id), Left)
        if not isinstance(reply, Left) or reply.room_id != room_id:
            await self._abort(_garbage("LEFT names another room"))

    async def send(
        self,
        room_id: bytes,
        blob: bytes,
        *,
        ttl: int = DEFAULT_TTL,
        message_id: bytes | None = None,
    ) -> SendReceipt:
        """CEN-4.3: relay `blob` to the room's other members; returns once it is committed.

        Retrying with the same `message_id` never stores or delivers it twice.
        Raises `CentralError` (NOT_MEMBER, RATE_LIMITED, ...) when refused.
        """
        if message_id is None:
            message_id = self._random_bytes(MESSAGE_ID_SIZE)
        frame = Send(room_id=room_id, message_id=message_id, ttl=ttl, blob=blob)
        reply = await self._request(frame, Sent)
        if not isinstance(reply, Sent) or reply.message_id != message_id:
            await self._abort(_garbage("SENT names another message id"))
        return SendReceipt(message_id=message_id, timestamp_ms=reply.timestamp_ms)

    async def ack(self, seqs: Iterable[int]) -> int:
        """CEN-4.6: delete these mailbox entries; returns how many the service deleted."""
        reply = await self._request(Ack(seqs=tuple(seqs)), Acked)
        assert isinstance(reply, Acked)
        return reply.deleted

    async def receive(self) -> Delivery:
        """The next pushed mailbox entry. Raises the connection's failure once it is closed.

        Its seq is marked seen (in `seen_seqs`) only now, as it is handed out (HT-4.3).
        """
        try:
            delivery = await self._deliveries.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            assert self._failure is not None
            raise self._failure from None
        self._buffered.discard(delivery.seq)
        self._seen.add(delivery.seq)
        return delivery

    async def aclose(self) -> None:
        """Close the connection (normal closure); pending calls fail with CentralClosedError."""
        with anyio.move_on_after(2, shield=True):
            await self._ws.close()


@asynccontextmanager
async def connect_central(
    url: str,
    identity: Identity,
    *,
    timeout: float = 5.0,
    origin: str | None = None,
    seen_seqs: MutableSet[int] | None = None,
    random_bytes: RandomBytes = os.urandom,
) -> AsyncIterator[CentralClient]:
    """Connect to the service at `url` (``http://HOST:PORT`` or ``ws://HOST:PORT/ws``) as
    `identity`, authenticate, and yield the session; it is closed when the block ends.

    `timeout` bounds the connect + AUTH handshake and each request. `origin`
    overrides the signed origin (CEN-3.2), for a service configured with one.
    Raises `CentralError` if the service refuses the AUTH, `RemoteProtocolError`
    if it answers garbage, `OSError`/`TimeoutError` if it cannot be reached.
    """
    ws_url = websocket_url(url)
    host = urlsplit(ws_url).hostname or ""
    check_destination_host(host)
    try:
        with anyio.fail_after(timeout):
            websocket = await connect(
                ws_url,
                max_size=MAX_FRAME_SIZE,
                compression=None,
                open_timeout=timeout,
                close_timeout=2,
            )
    except (InvalidHandshake, InvalidURI) as exc:
        raise RemoteProtocolError(
            ErrorCode.MALFORMED, f"not a central service WebSocket: {exc}"
        ) from None
    client = CentralClient(
        websocket,
        identity,
        timeout=timeout,
        seen_seqs=set() if seen_seqs is None else seen_seqs,
        random_bytes=random_bytes,
    )
    try:
        try:
            with anyio.fail_after(timeout):
                await client._handshake(origin or origin_of(ws_url))
        except ConnectionClosed:
            raise client._closed_error() from None
        async with anyio.create_task_group() as tg:
            tg.start_soon(client._read_loop)
            try:
                yield client
            finally:
                tg.cancel_scope.cancel()
    finally:
        client._fail(CentralClosedError("the client closed the connection"))
        client._deliveries.close()
        await client.aclose()


# ---------------------------------------------------------------- health (HT-2.1)

#: Resolves a host name to an IPv4 literal; may raise a `DnsError` subclass.
Resolver = Callable[[str], Awaitable[str]]


class DnsError(Exception):
    """A resolver's typed failure; `label` is the HT-2.1 label it maps to."""

    label: ClassVar[FailureLabel] = FailureLabel.DNS_SERVFAIL


class DnsNxDomainError(DnsError):
    """The name does not exist (NXDOMAIN)."""

    label = FailureLabel.DNS_NXDOMAIN


class DnsServFailError(DnsError):
    """The resolver failed or refused (SERVFAIL, REFUSED)."""

    label = FailureLabel.DNS_SERVFAIL


class DnsTimeoutError(DnsError):
    """The resolver did not answer in time."""

    label = FailureLabel.DNS_TIMEOUT


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _http_get(
    ip: str, port: int, host_header: str, target: str
) -> tuple[int, bytes] | FailureLabel:
    """One ``GET`` with h11: (status, body), or the label of how it failed."""
    try:
        stream = await anyio.connect_tcp(ip, port)
    except OSError as exc:
        if _caused_by(exc, ConnectionResetError):
            return FailureLabel.CONNECTION_RESET
        # Refused, unreachable, no route: the address does not take connections.
        return FailureLabel.CONNECTION_REFUSED
    async with stream:
        connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEALTH_BODY)
        request = h11.Request(
            method="GET",
            target=target,
            headers=[
                ("Host", host_header),
                ("Accept", "application/json"),
                ("Connection", "close"),
                ("User-Agent", "railgun-ref"),
            ],
        )
        status: int | None = None
        body = bytearray()
        received = False
        try:
            await stream.send(connection.send(request) + connection.send(h11.EndOfMessage()))
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    try:
                        chunk = await stream.receive(65536)
                    except anyio.EndOfStream:
                        chunk = b""
                    if not chunk and not received:
                        # Closed without a byte of answer: as good as a reset to the client.
                        return FailureLabel.CONNECTION_RESET
                    received = True
                    connection.receive_data(chunk)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_HEALTH_BODY:
                        return FailureLabel.INVALID_RESPONSE
                elif isinstance(event, h11.EndOfMessage):
                    assert status is not None
                    return status, bytes(body)
                elif isinstance(event, h11.ConnectionClosed):
                    return FailureLabel.INVALID_RESPONSE
        except h11.RemoteProtocolError:
            return FailureLabel.INVALID_RESPONSE
        except (anyio.BrokenResourceError, OSError):
            return FailureLabel.CONNECTION_RESET


def _valid_health_body(body: bytes) -> bool:
    """CEN-1.2: ``{"status": "ok", "time": <finite number>}``."""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    if not isinstance(answer, dict) or answer.get("status") != "ok":
        return False
    server_time = answer.get("time")
    return (
        isinstance(server_time, int | float)
        and not isinstance(server_time, bool)
        and math.isfinite(server_time)
    )


@dataclass(slots=True)
class _CheckProgress:
    """How far one health check got: its start (clock seconds) and whether it is resolving."""

    start: float
    in_dns: bool = False


def _health_target(url: str, resolve: Resolver | None) -> tuple[str, int, str, str]:
    """(host, port, request target, Host header) of a health check of `url`."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"expected http://HOST:PORT, got {url!r}")
    host = parts.hostname
    if not _is_ip_literal(host):
        if resolve is None:
            raise ValueError(f"{host!r} is a name: pass resolve= to check it")
    else:
        check_destination_host(host)
    target = parts.path if parts.path not in ("", "/") else HEALTH_PATH
    return host, parts.port or 80, target, parts.netloc.rpartition("@")[2]


async def _health_attempt(
    target: tuple[str, int, str, str], resolve: Resolver | None, progress: _CheckProgress
) -> tuple[int, bytes] | FailureLabel:
    """Resolve (a name) and GET, with no deadline of its own: (status, body) or a label."""
    host, port, path, host_header = target
    address = host
    if resolve is not None and not _is_ip_literal(host):
        progress.in_dns = True
        try:
            address = await resolve(host)
        except DnsError as exc:
            return exc.label
        progress.in_dns = False
        check_destination_host(address)
    return await _http_get(address, port, host_header, path)


def _health_result(
    outcome: tuple[int, bytes] | FailureLabel | None, progress: _CheckProgress, end: float
) -> HealthResult:
    """The `HealthResult` of an attempt that ended at `end` (None: not answered in time)."""
    if outcome is None:
        label = FailureLabel.DNS_TIMEOUT if progress.in_dns else FailureLabel.GENERIC_TIMEOUT
        return HealthResult(at=end, ok=False, label=label)
    if isinstance(outcome, FailureLabel):
        return HealthResult(at=end, ok=False, label=outcome)
    status, body = outcome
    latency = end - progress.start
    if status != 200:
        return HealthResult(at=end, ok=False, latency=latency, label=FailureLabel.HTTP_ERROR)
    if not _valid_health_body(body):
        return HealthResult(at=end, ok=False, latency=latency, label=FailureLabel.INVALID_RESPONSE)
    return HealthResult(at=end, ok=True, latency=latency)


async def check_health(
    url: str,
    timeout: float,
    *,
    resolve: Resolver | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> HealthResult:
    """HT-2.1: GET `url` + ``/health`` within `timeout` seconds, as a `HealthResult`.

    `url` is the service's base URL (``http://HOST:PORT``), as `railgun-ref
    central` prints it. A host name (not an IP literal) is resolved with
    `resolve`; its `DnsError`s become DNS labels, and a resolver still busy at
    the deadline is ``dns_timeout``. Other failures are labelled
    ``connection_refused`` (connect failed), ``connection_reset`` (the
    connection broke, or closed without an answer), ``generic_timeout``
    (connected, no full answer in time), ``http_error`` (a status other than
    200) and ``invalid_response`` (not HTTP, or a 200 whose body is not a health
    answer). Classifying slow answers as ``high_latency`` is the detector's job.
    `at` and the latency come from `clock`. Raises ValueError for a URL this
    project may not contact (not http, or refused by `drivers.addresses`).
    """
    target = _health_target(url, resolve)
    progress = _CheckProgress(start=clock())
    outcome: tuple[int, bytes] | FailureLabel | None = None
    with anyio.move_on_after(timeout):
        outcome = await _health_attempt(target, resolve, progress)
    return _health_result(outcome, progress, clock())


async def check_health_waiting_late(
    url: str,
    timeout: float,
    wait_late: float,
    *,
    report: Callable[[HealthResult], None],
    resolve: Resolver | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> float | None:
    """HT-2.5: `check_health`, its result handed to `report` once known or at `timeout`,
    whichever is first; a check that timed out goes on waiting for its answer until
    `wait_late` seconds after its start. Returns the latency of such a late answer
    (None: answered in time, or never): a sample for the next checks' timeout."""
    target = _health_target(url, resolve)
    progress = _CheckProgress(start=clock())
    timed_out = False

    async def deadline() -> None:
        nonlocal timed_out
        await anyio.sleep(timeout)
        timed_out = True
        report(_health_result(None, progress, clock()))

    outcome: tuple[int, bytes] | FailureLabel | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(deadline)
        with anyio.move_on_after(max(timeout, wait_late)):
            outcome = await _health_attempt(target, resolve, progress)
        tg.cancel_scope.cancel()
    result = _health_result(outcome, progress, clock())
    if not timed_out:
        report(result)
        return None
    return result.latency
