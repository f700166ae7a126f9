"""Black-box runner for a central service (``ws://HOST:PORT``, section 14), on 127.0.0.0/8.

It speaks the frames of CEN-2 over its own WebSocket connections, with
identities it makes for the run and a closed room whose membership log it
signs itself (ROOM-6.3), and reports per clause in the wire runner's
`Report` format (`railgun-ref conformance run --target ws://...`):
authentication (CEN-3: a fresh challenge, refusals and their close codes,
WELCOME), frames (CEN-2.1: text, version, type) and the mailbox (CEN-4:
membership, TTL bound, delivery, idempotent resend, ACK, delivery on
reconnection). The checks leave rows behind in the service's mailbox only
for the run's own identities, and ACK what they can.
"""

import functools
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import anyio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from railgun_ref.conformance.catalog import CENTRAL_RUNNER_CHECKS
from railgun_ref.conformance.wire_runner import CheckResult, Report, TargetError, print_report
from railgun_ref.core.errors import ErrorCode, RemoteProtocolError
from railgun_ref.drivers.addresses import check_destination_host
from railgun_ref.identity.keys import Identity
from railgun_ref.rooms import RoomsCore
from railgun_ref.wire import cbor
from railgun_ref.wire.central import (
    MAX_TTL,
    Ack,
    Acked,
    Auth,
    CentralErrorCode,
    Challenge,
    Deliver,
    ErrorFrame,
    Join,
    Joined,
    Send,
    Sent,
    ServerFrame,
    Welcome,
    auth_message,
    close_code,
    decode_server_frame,
    encode_frame,
)

#: An Ed25519 public key of order 4 (ID-2.2): refused as BAD_KEY.
_SMALL_ORDER_KEY: Final = bytes(32)
#: When the run's room log says its changes were made (a log carries its own times).
_LOG_TIME: Final = 1_700_000_000.0


def parse_central_target(target: str) -> tuple[str, str]:
    """``ws://HOST:PORT[/ws]`` on 127.0.0.0/8 -> (WebSocket URL, origin to sign)."""
    parts = urlsplit(target)
    if parts.scheme != "ws":
        raise TargetError(f"target must be ws://HOST:PORT, got {target!r}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.hostname is None or not port:
        raise TargetError(f"target must name a host and a non-zero port, got {target!r}")
    try:
        check_destination_host(parts.hostname)
    except ValueError as exc:
        raise TargetError(f"{exc} (the runner sends malformed frames on purpose)") from None
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return f"ws://{parts.hostname}:{port}{path}", f"ws://{parts.hostname}:{port}"


@dataclass(slots=True, kw_only=True)
class _Run:
    url: str
    origin: str
    timeout: float
    alice: Identity = field(default_factory=lambda: Identity.generate(os.urandom))
    bob: Identity = field(default_factory=lambda: Identity.generate(os.urandom))
    room: bytes = b""
    log: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        core = RoomsCore(self.alice, random_bytes=os.urandom)
        now = _LOG_TIME
        self.room = core.create_room(name="conformance", now=now)
        invitation = core.invite(self.room, self.bob.public_key, now=now)
        joiner = RoomsCore(self.bob, random_bytes=os.urandom)
        joiner.receive_invitation(invitation, now=now)
        joiner.accept(self.room, now=now)
        core.receive_changes(self.room, joiner.changes(self.room), now=now)
        self.log = core.changes(self.room)


async def _frame(ws: ClientConnection, timeout: float) -> tuple[int, ServerFrame] | None:
    """The next server frame within `timeout`, or None (silence or a closed connection)."""
    with anyio.move_on_after(timeout):
        try:
            raw = await ws.recv()
        except ConnectionClosed:
            return None
        if not isinstance(raw, bytes):
            raise RemoteProtocolError(ErrorCode.MALFORMED, "a text frame from the service")
        return decode_server_frame(raw)
    return None


async def _closed_with(ws: ClientConnection, timeout: float) -> int | None:
    """The close code once the service closes the connection, or None if it does not."""
    with anyio.move_on_after(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            return ws.close_code
    return None


@asynccontextmanager
async def _connection(run: _Run) -> AsyncIterator[tuple[ClientConnection, Challenge]]:
    async with connect(run.url, max_size=None, compression=None, open_timeout=run.timeout) as ws:
        got = await _frame(ws, run.timeout)
        if got is None or not isinstance(got[1], Challenge):
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"no CHALLENGE first: {got}")
        yield ws, got[1]


def _auth(run: _Run, challenge: Challenge, identity: Identity, *, origin: str = "") -> bytes:
    signed = auth_message(challenge.nonce, origin or run.origin)
    return encode_frame(
        Auth(
            nonce=challenge.nonce, public_key=identity.public_key, signature=identity.sign(signed)
        ),
        req=1,
    )


@asynccontextmanager
async def _session(run: _Run, identity: Identity) -> AsyncIterator[ClientConnection]:
    """An authenticated connection (its WELCOME read)."""
    async with _connection(run) as (ws, challenge):
        await ws.send(_auth(run, challenge, identity))
        got = await _frame(ws, run.timeout)
        if got is None or not isinstance(got[1], Welcome):
            raise RemoteProtocolError(ErrorCode.MALFORMED, f"no WELCOME: {got}")
        yield ws


async def _request(ws: ClientConnection, data: bytes, timeout: float) -> ServerFrame | None:
    """Send a frame; the first reply that is not a DELIVER."""
    await ws.send(data)
    while (got := await _frame(ws, timeout)) is not None:
        if not isinstance(got[1], Deliver):
            return got[1]
    return None


def _is_error(frame: ServerFrame | None, code: CentralErrorCode) -> bool:
    return isinstance(frame, ErrorFrame) and frame.code == code


def _raw_frame(version: int, frame_type: int, body: dict[int, Any]) -> bytes:
    return cbor.encode({0: version, 1: frame_type, 2: 7, 3: body})


_Outcome = tuple[bool, str]


async def _fresh_challenge(run: _Run) -> _Outcome:
    async with _connection(run) as (_, first), _connection(run) as (_, second):
        pass
    if len(first.nonce) != 32 or first.nonce == second.nonce:
        return False, "two connections got the same (or a short) challenge nonce"
    return True, "a fresh 32-byte nonce per connection"


async def _refused_then_closed(
    run: _Run, data: Callable[[Challenge], bytes], code: CentralErrorCode
) -> _Outcome:
    async with _connection(run) as (ws, challenge):
        await ws.send(data(challenge))
        got = await _frame(ws, run.timeout)
        closed = await _closed_with(ws, run.timeout)
    frame = None if got is None else got[1]
    if not _is_error(frame, code) or closed != close_code(code):
        return False, f"expected ERROR {code.name} and close {close_code(code)}: {frame}, {closed}"
    return True, f"ERROR {code.name}, close {closed}"


async def _before_auth(run: _Run) -> _Outcome:
    join = encode_frame(Join(room_id=run.room, changes=run.log), req=3)
    return await _refused_then_closed(run, lambda _: join, CentralErrorCode.UNAUTHENTICATED)


async def _wrong_origin(run: _Run) -> _Outcome:
    def auth(challenge: Challenge) -> bytes:
        return _auth(run, challenge, run.alice, origin="ws://127.0.0.1:1")

    return await _refused_then_closed(run, auth, CentralErrorCode.BAD_SIGNATURE)


async def _foreign_nonce(run: _Run) -> _Outcome:
    async with _connection(run) as (_, other):
        pass
    return await _refused_then_closed(
        run, lambda _: _auth(run, other, run.alice), CentralErrorCode.REPLAY
    )


async def _small_order_key(run: _Run) -> _Outcome:
    def auth(challenge: Challenge) -> bytes:
        bad = Auth(nonce=challenge.nonce, public_key=_SMALL_ORDER_KEY, signature=bytes(64))
        return encode_frame(bad, req=1)

    return await _refused_then_closed(run, auth, CentralErrorCode.BAD_KEY)


async def _welcome(run: _Run) -> _Outcome:
    async with _connection(run) as (ws, challenge):
        await ws.send(_auth(run, challenge, run.alice))
        got = await _frame(ws, run.timeout)
    welcome = None if got is None else got[1]
    if not isinstance(welcome, Welcome) or welcome.node_id != run.alice.node_id:
        return False, f"expected WELCOME with our node id, got {welcome}"
    return True, "WELCOME names our node id"


async def _bad_frames(run: _Run) -> _Outcome:
    """CEN-2.1, CEN-5.2: text, version 2 and type 99 get their ERRORs; the session stays."""
    join = encode_frame(Join(room_id=run.room, changes=run.log), req=9)
    async with _session(run, run.alice) as ws:
        text = await _request_text(ws, run.timeout)
        version = await _request(ws, _raw_frame(2, 4, {}), run.timeout)
        kind = await _request(ws, _raw_frame(1, 99, {}), run.timeout)
        joined = await _request(ws, join, run.timeout)
    wanted = (
        (text, CentralErrorCode.MALFORMED),
        (version, CentralErrorCode.UNSUPPORTED_VERSION),
        (kind, CentralErrorCode.UNKNOWN_TYPE),
    )
    for frame, code in wanted:
        if not _is_error(frame, code):
            return False, f"expected ERROR {code.name}, got {frame}"
    if not isinstance(joined, Joined):
        return False, f"the session did not survive three bad frames: {joined}"
    return True, "MALFORMED, UNSUPPORTED_VERSION, UNKNOWN_TYPE, then still served"


async def _request_text(ws: ClientConnection, timeout: float) -> ServerFrame | None:
    await ws.send("a text message")
    got = await _frame(ws, timeout)
    return None if got is None else got[1]


def _send(run: _Run, message_id: bytes, *, ttl: int = 600, blob: bytes = b"sealed") -> bytes:
    frame = Send(room_id=run.room, message_id=message_id, ttl=ttl, blob=blob)
    return encode_frame(frame, req=5)


async def _not_member(run: _Run) -> _Outcome:
    async with _session(run, Identity.generate(os.urandom)) as ws:
        reply = await _request(ws, _send(run, os.urandom(16)), run.timeout)
    ok = _is_error(reply, CentralErrorCode.NOT_MEMBER)
    return ok, "NOT_MEMBER" if ok else f"SEND by a non-member: {reply}"


async def _ttl_too_long(run: _Run) -> _Outcome:
    body = {0: run.room, 1: os.urandom(16), 2: MAX_TTL + 1, 3: b"sealed"}
    async with _session(run, run.alice) as ws:
        await _request(
            ws, encode_frame(Join(room_id=run.room, changes=run.log), req=2), run.timeout
        )
        reply = await _request(ws, _raw_frame(1, 8, body), run.timeout)
    ok = _is_error(reply, CentralErrorCode.TTL_TOO_LONG)
    return ok, "TTL_TOO_LONG" if ok else f"TTL {MAX_TTL + 1}: {reply}"


async def _deliver_resend_ack(run: _Run) -> _Outcome:
    """CEN-4.1, 4.3..4.6: JOIN, SEND, DELIVER to the other member, resend, ACK."""
    message_id = os.urandom(16)
    join = encode_frame(Join(room_id=run.room, changes=run.log), req=2)
    async with _session(run, run.alice) as alice, _session(run, run.bob) as bob:
        for ws in (alice, bob):
            if not isinstance(joined := await _request(ws, join, run.timeout), Joined):
                return False, f"JOIN with the room's log: {joined}"
        sent = await _request(alice, _send(run, message_id), run.timeout)
        delivered = await _frame(bob, run.timeout)
        again = await _request(alice, _send(run, message_id), run.timeout)
        duplicate = await _frame(bob, run.timeout)
        if not isinstance(sent, Sent) or delivered is None or not isinstance(delivered[1], Deliver):
            return False, f"SEND then DELIVER: {sent}, {delivered}"
        if not isinstance(again, Sent) or again.timestamp_ms != sent.timestamp_ms:
            return False, f"a resend must get the first SENT again: {again}"
        if duplicate is not None:
            return False, f"a resend was delivered again: {duplicate[1]}"
        acked = await _request(bob, encode_frame(Ack(seqs=(delivered[1].seq,)), req=4), run.timeout)
    if not isinstance(acked, Acked) or acked.deleted != 1:
        return False, f"ACK of the delivered seq: {acked}"
    async with _session(run, run.bob) as bob:
        stale = await _frame(bob, run.timeout)
    if stale is not None and isinstance(stale[1], Deliver) and stale[1].message_id == message_id:
        return False, "an ACKed entry came again on reconnection"
    return True, "DELIVER once, resend acknowledged not duplicated, ACK deletes"


async def _offline_delivery(run: _Run) -> _Outcome:
    """CEN-4.5: an entry written while a member is offline is pushed after its WELCOME."""
    message_id = os.urandom(16)
    join = encode_frame(Join(room_id=run.room, changes=run.log), req=2)
    async with _session(run, run.bob) as bob:
        await _request(bob, join, run.timeout)
    async with _session(run, run.alice) as alice:
        await _request(alice, join, run.timeout)
        sent = await _request(alice, _send(run, message_id, blob=b"while away"), run.timeout)
    if not isinstance(sent, Sent):
        return False, f"SEND: {sent}"
    async with _session(run, run.bob) as bob:
        while (got := await _frame(bob, run.timeout)) is not None:
            if isinstance(got[1], Deliver) and got[1].message_id == message_id:
                ack = encode_frame(Ack(seqs=(got[1].seq,)), req=4)
                await _request(bob, ack, run.timeout)
                return True, "pushed after WELCOME on reconnection"
    return False, "the entry written while away never came"


_CHECK_FUNCTIONS: Final[tuple[Callable[[_Run], Awaitable[_Outcome]], ...]] = (
    _fresh_challenge,
    _before_auth,
    _wrong_origin,
    _foreign_nonce,
    _small_order_key,
    _welcome,
    _bad_frames,
    _not_member,
    _ttl_too_long,
    _deliver_resend_ack,
    _offline_delivery,
)


async def run(target: str, *, timeout: float = 1.0) -> Report:
    """Check the central service at `target` and report per clause."""
    url, origin = parse_central_target(target)
    state = _Run(url=url, origin=origin, timeout=timeout)
    results: list[CheckResult] = []
    for (clause, name), check in zip(CENTRAL_RUNNER_CHECKS, _CHECK_FUNCTIONS, strict=True):
        try:
            passed, detail = await check(state)
        except (OSError, RemoteProtocolError, WebSocketException, TimeoutError) as exc:
            passed, detail = False, f"{type(exc).__name__}: {exc}"
        results.append(CheckResult(check=name, clause=clause, passed=passed, detail=detail))
    return Report(target=target, node_id=None, timeout=timeout, checks=tuple(results))


def main(target: str, json_output: bool, *, timeout: float = 1.0) -> int:
    """CLI entry: 0 if every check passed, 1 if any failed, 2 if the target is refused."""
    try:
        parse_central_target(target)
    except TargetError as exc:
        print(f"railgun-ref conformance run: {exc}", file=sys.stderr)
        return 2
    report = anyio.run(functools.partial(run, target, timeout=timeout))
    return print_report(report, json_output)
